"""Model soups (Wortsman et al. 2022): average checkpoints of one architecture, greedily, keeping
each ingredient only if the validation figure does not drop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch

from blurcli.checkpoint import Checkpoint, is_checkpoint, load_checkpoint, save_checkpoint
from blurcli.device import resolve_device
from blurcli.errors import UsageError
from blurcli.model import UNet, count_parameters
from blurcli.paths import check_outputs, check_writable
from blurcli.segment import new_segmenter
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import SplitData, load_split


@dataclass
class SoupResult:
    """A greedy model soup: which checkpoints went in, and every step's validation figures."""

    out: Path
    chosen: list[Path]
    metrics: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)


def average_weights(checkpoints: Sequence[Checkpoint]) -> dict[str, torch.Tensor]:
    """The uniform average of checkpoints' float tensors (integer counters come from the first)."""
    first = checkpoints[0].state_dict
    return {
        key: torch.stack([c.state_dict[key].float() for c in checkpoints]).mean(0)
        if value.is_floating_point()
        else value
        for key, value in first.items()
    }


SoupMetric = Literal["mean_iou", "subject_iou", "uniform"]  # uniform: every ingredient, unranked
SOUP_METRICS: tuple[str, ...] = get_args(SoupMetric)


def check_soup_metric(metric: str) -> None:
    """A UsageError unless `metric` is a figure a soup can rank by."""
    if metric not in SOUP_METRICS:
        raise UsageError(f"--soup-by {metric}: unknown figure (use {' or '.join(SOUP_METRICS)})")


def _soup_figures(metrics: dict[str, Any]) -> dict[str, float]:
    return {"val_mean_iou": metrics["mean_iou"], "val_subject_iou": metrics["subject_iou"]}


def _greedy(
    count: int,
    score: Callable[[list[int]], dict[str, Any]],
    metric: str,
    record: Callable[[list[int], dict[str, Any], bool | None], None],
) -> tuple[list[int], dict[str, Any]]:
    """Ingredients 0..count-1 scored alone, ranked by `metric`, each added to the average only if
    the average's `metric` does not drop; returns the chosen ones and their figures."""
    alone = []
    for index in range(count):
        alone.append(score([index]))
        record([index], alone[-1], None)
    order = sorted(range(count), key=lambda i: -alone[i][metric])
    chosen, best = [order[0]], alone[order[0]]
    for index in order[1:]:
        tried = [*chosen, index]
        candidate = score(tried)
        kept = candidate[metric] >= best[metric]
        if kept:
            chosen, best = tried, candidate
        record(tried, candidate, kept)
    return chosen, best


def greedy_soup(
    data: Path,
    out: Path,
    ingredients: Sequence[Path],
    device: str | None = None,
    limit: int | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    metric: SoupMetric = "mean_iou",
) -> SoupResult:
    """Average fine-tuned checkpoints of one architecture ("model soup", Wortsman et al. 2022).

    Ingredients are ranked by the validation `metric` (mean IoU, or subject IoU when that is the
    figure to improve); each is added to the average only if the average's `metric` does not drop.
    With "uniform" every ingredient goes in, unranked (for snapshots chosen on a figure LFW does not
    give, such as the person's on everyday photos).
    Only LFW's validation split is read (the head's figures; a person output is averaged along but
    not scored). The soup is written to `out` (float16) with its validation
    figures, like a trained checkpoint.
    """
    if not ingredients:
        raise UsageError("--soup needs at least one checkpoint")
    check_soup_metric(metric)
    return _soup(data, out, ingredients, resolve_device(device), limit, on_step, metric)


def _soup(
    data: Path,
    out: Path,
    ingredients: Sequence[Path],
    device: torch.device,
    limit: int | None,
    on_step: Callable[[dict[str, Any]], None] | None,
    metric: SoupMetric,
) -> SoupResult:
    """`greedy_soup` once the ingredients and the figure are known to be good and `device` resolved."""
    check_outputs({out: is_checkpoint}, ingredients, {"--data": data})
    check_writable([out])  # before hours of scoring, not after
    checkpoints = _load_ingredients(ingredients)
    tasting = _Tasting(ingredients, checkpoints, load_split(data, "validation", limit=limit), device, on_step)
    if metric == "uniform":
        chosen = list(range(len(ingredients)))
        best = tasting.score(chosen)
        tasting.record(chosen, best, True)
    else:
        chosen, best = _greedy(len(ingredients), tasting.score, metric, tasting.record)
    save_checkpoint(out, _soup_checkpoint(checkpoints, chosen, best, ingredients, metric), half=True)
    return SoupResult(out, [ingredients[i] for i in chosen], best, tasting.steps)


def _load_ingredients(ingredients: Sequence[Path]) -> list[Checkpoint]:
    """The ingredients' checkpoints, once they are known to be one architecture (same network,
    input size, classes and normalisation); else a UsageError naming the first that differs."""
    checkpoints = [load_checkpoint(path) for path in ingredients]
    first = checkpoints[0]
    for path, checkpoint in zip(ingredients, checkpoints, strict=True):
        same = (checkpoint.config, checkpoint.input_size, checkpoint.classes) == (
            first.config,
            first.input_size,
            first.classes,
        )
        if not same or dict(checkpoint.normalization) != dict(first.normalization):
            raise UsageError(
                f"{path}: a different model from {ingredients[0]}; a soup needs one architecture"
            )
    return checkpoints


@dataclass
class _Tasting:
    """Scores averages of some of the ingredients on LFW's validation split (the head's figures),
    and records each step for the result and `on_step`."""

    ingredients: Sequence[Path]
    checkpoints: list[Checkpoint]
    validation: SplitData
    device: torch.device
    on_step: Callable[[dict[str, Any]], None] | None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def score(self, members: list[int]) -> dict[str, Any]:
        """The validation figures of the average of ingredients `members`."""
        weights = average_weights([self.checkpoints[i] for i in members])
        soup = dataclasses.replace(self.checkpoints[0], state_dict=weights)
        return evaluate(
            new_segmenter(soup, str(self.device), subject="head", backend="torch"), self.validation
        )

    def record(self, members: list[int], figures: dict[str, Any], kept: bool | None) -> None:
        """Note a step: which ingredients, their figures, and whether the last of them was kept."""
        self.steps.append(
            {"members": [str(self.ingredients[i]) for i in members], **_soup_figures(figures), "kept": kept}
        )
        if self.on_step:
            self.on_step(self.steps[-1])


def _soup_checkpoint(
    checkpoints: list[Checkpoint],
    chosen: list[int],
    figures: dict[str, Any],
    ingredients: Sequence[Path],
    metric: SoupMetric,
) -> Checkpoint:
    """The average of the `chosen` ingredients with its validation `figures`, as a trained
    checkpoint is written, its `info` naming the ingredients and the figure they were chosen by."""
    first = checkpoints[0]
    return Checkpoint(
        config=first.config,
        state_dict=average_weights([checkpoints[i] for i in chosen]),
        input_size=first.input_size,
        classes=first.classes,
        subjects=first.subjects,
        normalization=first.normalization,
        metrics=figures,
        info={
            "eval_split": "validation",
            "soup": [str(ingredients[i]) for i in chosen],
            "soup_by": metric,
            "train": dict(first.info.get("train", {})),
            "parameters": count_parameters(UNet(first.config)),
            "torch": str(torch.__version__),
        },
    )
