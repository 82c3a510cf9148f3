"""Training loop: cross-entropy, Adam, ReduceLROnPlateau, best-by-validation-mIoU checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from blurcli.data import CLASSES, NORMALIZATION, SegmentationDataset, load_split
from blurcli.device import resolve_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.evaluate import evaluate
from blurcli.model import UNet, UNetConfig, count_parameters, fuse_batchnorm
from blurcli.segment import Segmenter
from blurcli.weights import Checkpoint, build_model, load_checkpoint, save_checkpoint


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in the checkpoint so runs can be reproduced."""

    data: Path
    out: Path
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    input_size: int = 160
    width: int = 8
    depth: int = 4
    stem_stride: int = 2
    seed: int = 0
    device: str | None = None
    workers: int = 2
    class_weights: bool = False
    augment: bool = True
    plateau_patience: int = 3
    limit: int | None = None
    resume: bool = False
    half: bool = True
    init: Path | None = None  # start from these weights (fine-tuning); same architecture
    teacher: Path | None = None  # distil: also match this model's probabilities on each batch
    distill: float = 0.5  # weight of the teacher's term; the labels' cross-entropy gets the rest
    loss_size: int | None = None  # labels at this side, logits enlarged to it (None: the input size)
    subject_iou: float = 0.0  # weight of a soft-IoU term on the subject (skin + hair vs background)
    snapshots: bool = False  # also keep every epoch's weights (<out stem>.eNNN.pt), for soups

    def model_config(self) -> UNetConfig:
        return UNetConfig(width=self.width, depth=self.depth, stem_stride=self.stem_stride)

    def to_info(self) -> dict[str, Any]:
        """JSON-friendly copy for the checkpoint and logs."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class RunPaths:
    """Files a run writes next to its best checkpoint."""

    best: Path
    last: Path
    log: Path
    plot: Path

    @classmethod
    def for_output(cls, out: Path) -> RunPaths:
        stem = out.with_suffix("")
        return cls(
            best=out,
            last=stem.with_name(stem.name + ".last.pt"),
            log=stem.with_name(stem.name + ".log.jsonl"),
            plot=stem.with_name(stem.name + ".curves.png"),
        )

    def snapshot(self, epoch: int) -> Path:
        """Where `--snapshots` keeps the weights after `epoch` (1-based), beside the best checkpoint."""
        stem = self.best.with_suffix("")
        return stem.with_name(f"{stem.name}.e{epoch:03d}.pt")


@dataclass
class TrainResult:
    """What a finished run produced."""

    paths: RunPaths
    best_epoch: int
    best_metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    parameters: int = 0


class TrainingInterrupted(BlurcliError):
    """Ctrl-C during training: a resumable checkpoint was saved."""

    def __init__(self, last: Path, epoch: int) -> None:
        message = f"interrupted in epoch {epoch + 1}; {last} holds the state after epoch {epoch}"
        super().__init__(f"{message}; continue with --resume", 130)


StepCallback = Callable[[int, int, int, float], None]
EpochCallback = Callable[[dict[str, Any]], None]


def class_weights_from(masks: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse square-root class frequencies, normalised to mean 1: rare hair counts more."""
    counts = np.bincount(masks.ravel(), minlength=num_classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts / counts.sum(), 1e-6))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


def train(
    config: TrainConfig,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train a UNet on LFW Part Labels; keep the best checkpoint by validation mean IoU."""
    if config.epochs < 1 or config.batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    paths = RunPaths.for_output(config.out)
    device = resolve_device(config.device)
    model_config = config.model_config()
    if config.input_size % model_config.multiple:
        raise UsageError(f"--input-size {config.input_size} must be a multiple of {model_config.multiple}")
    torch.manual_seed(config.seed)

    train_split = load_split(config.data, "train", limit=config.limit)
    val_split = load_split(config.data, "validation", limit=config.limit)
    norm = {"mean": list(NORMALIZATION["mean"]), "std": list(NORMALIZATION["std"])}
    dataset = SegmentationDataset(
        train_split,
        config.input_size,
        model_config.multiple,
        NORMALIZATION,
        augment=config.augment,
        seed=config.seed,
        label_size=config.loss_size,
    )

    model = UNet(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=config.plateau_patience
    )
    weights = class_weights_from(train_split.masks, len(CLASSES)).to(device) if config.class_weights else None
    teacher = None if config.teacher is None else load_teacher(config.teacher, norm, config, device)
    objective = Objective(weights, teacher, config.distill, config.subject_iou)
    start_epoch, best_miou, best_epoch, history = 0, -math.inf, -1, []
    if config.init is not None and not config.resume:  # a resumed run already holds its start
        _load_weights(config.init, load_checkpoint(config.init), model)
    if config.resume:
        start_epoch, best_miou, best_epoch, history = _restore(paths.last, model, optimizer, scheduler)
        paths.log.write_text("".join(json.dumps(record) + "\n" for record in history))
    else:
        paths.log.unlink(missing_ok=True)
        # The state before any epoch, so an interruption in the first epoch can resume too.
        resume = _resume_state(optimizer, scheduler, 0, best_miou, best_epoch, history)
        save_checkpoint(paths.last, _checkpoint(model, config, norm, {}, 0, resume))

    use_amp = device.type == "cuda"
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            dataset.set_epoch(epoch)
            loader = DataLoader(
                dataset,
                batch_size=config.batch_size,
                shuffle=True,
                drop_last=len(dataset) > config.batch_size,
                num_workers=config.workers,
                generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
                pin_memory=device.type == "cuda",
            )
            train_loss = _train_epoch(model, loader, optimizer, objective, device, use_amp, epoch, on_step)
            segmenter = Segmenter(
                model,
                config.input_size,
                model_config.multiple,
                tuple(norm["mean"]),
                tuple(norm["std"]),
                device,
            )
            val = evaluate(segmenter, val_split, batch_size=max(config.batch_size, 32))
            scheduler.step(val["loss"])
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val["loss"],
                "val_pixel_accuracy": val["pixel_accuracy"],
                "val_mean_iou": val["mean_iou"],
                "val_subject_iou": val["subject_iou"],
                "val_iou": val["iou"],
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            history.append(record)
            improved = val["mean_iou"] > best_miou
            if improved or config.snapshots:
                checkpoint = _checkpoint(model, config, norm, val, epoch + 1)
            if improved:
                best_miou, best_epoch = val["mean_iou"], epoch + 1
                save_checkpoint(paths.best, checkpoint, half=config.half)
            if config.snapshots:
                save_checkpoint(paths.snapshot(epoch + 1), checkpoint, half=config.half)
            record["best"] = improved
            with paths.log.open("a") as log:
                log.write(json.dumps(record) + "\n")
            plot_history(history, paths.plot)
            resume = _resume_state(optimizer, scheduler, epoch + 1, best_miou, best_epoch, history)
            save_checkpoint(paths.last, _checkpoint(model, config, norm, val, epoch + 1, resume))
            if on_epoch:
                on_epoch(record)
    except KeyboardInterrupt:
        # `last` already holds the state at the end of the previous epoch: resuming from an epoch
        # boundary gives exactly the model an uninterrupted run would have given.
        raise TrainingInterrupted(paths.last, epoch) from None

    best = load_checkpoint(paths.best) if paths.best.exists() else None
    return TrainResult(
        paths=paths,
        best_epoch=best_epoch,
        best_metrics=best.metrics if best else {},
        history=history,
        parameters=count_parameters(model),
    )


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


SoupMetric = Literal["mean_iou", "subject_iou"]


def _soup_figures(metrics: dict[str, Any]) -> dict[str, float]:
    return {"val_mean_iou": metrics["mean_iou"], "val_subject_iou": metrics["subject_iou"]}


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
    Only the validation split is read. The soup is written to `out` (float16) with its validation
    figures, like a trained checkpoint.
    """
    if not ingredients:
        raise UsageError("--soup needs at least one checkpoint")
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
    val_split = load_split(data, "validation", limit=limit)
    target = resolve_device(device)

    def score(members: list[int]) -> dict[str, Any]:
        soup = dataclasses.replace(first, state_dict=average_weights([checkpoints[i] for i in members]))
        return evaluate(Segmenter.from_checkpoint(soup, str(target)), val_split)

    steps = []
    alone = []
    for index, path in enumerate(ingredients):
        alone.append(score([index]))
        steps.append({"members": [str(path)], **_soup_figures(alone[-1]), "kept": None})
        if on_step:
            on_step(steps[-1])
    order = sorted(range(len(ingredients)), key=lambda i: -alone[i][metric])
    chosen, best = [order[0]], alone[order[0]]
    for index in order[1:]:
        tried = [*chosen, index]
        candidate = score(tried)
        kept = candidate[metric] >= best[metric]
        if kept:
            chosen, best = tried, candidate
        members = [str(ingredients[i]) for i in tried]
        steps.append({"members": members, **_soup_figures(candidate), "kept": kept})
        if on_step:
            on_step(steps[-1])
    soup = Checkpoint(
        config=first.config,
        state_dict=average_weights([checkpoints[i] for i in chosen]),
        input_size=first.input_size,
        classes=first.classes,
        normalization=first.normalization,
        metrics=best,
        info={
            "eval_split": "validation",
            "soup": [str(ingredients[i]) for i in chosen],
            "soup_by": metric,
            "train": dict(first.info.get("train", {})),
            "parameters": count_parameters(UNet(first.config)),
            "torch": str(torch.__version__),
        },
    )
    save_checkpoint(out, soup, half=True)
    return SoupResult(out, [ingredients[i] for i in chosen], best, steps)


@dataclass(frozen=True)
class Objective:
    """The training loss: cross-entropy against the labels, optionally mixed with cross-entropy
    against a teacher's probabilities on the same batch (knowledge distillation)."""

    weights: torch.Tensor | None = None  # per-class weights of the labels' term
    teacher: nn.Module | None = None
    distill: float = 0.5
    subject_iou: float = 0.0  # weight of soft_subject_iou_loss, added to the rest

    def __call__(self, logits: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Labels finer than the logits (`--loss-size`) score the logits enlarged bilinearly, as
        `eval` enlarges predictions to the labels' resolution."""
        logits = _enlarge(logits, masks.shape[-2:])
        loss = F.cross_entropy(logits, masks, weight=self.weights)
        if self.teacher is not None:
            with torch.no_grad():
                target = _enlarge(mirrored_probabilities(self.teacher, images), masks.shape[-2:])
            loss = (1 - self.distill) * loss + self.distill * F.cross_entropy(logits, target)
        if self.subject_iou:
            loss = loss + self.subject_iou * soft_subject_iou_loss(logits, masks)
        return loss


def soft_subject_iou_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU of the subject (every class but 0) pooled over the batch, as eval pools its
    confusion matrix: cross-entropy scores pixels, this scores the subject's overlap itself."""
    subject = 1.0 - torch.softmax(logits, dim=1)[:, 0]
    truth = (masks > 0).to(subject.dtype)
    overlap = (subject * truth).sum()
    return 1.0 - overlap / (subject.sum() + truth.sum() - overlap).clamp_min(1e-6)


def _enlarge(maps: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, *size), bilinear with pixel centres aligned (as cv2.resize)."""
    if maps.shape[-2:] == size:
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def mirrored_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities averaged over the batch and its left-right mirror: a teacher twice as
    costly but steadier than one pass, which is fine since it only runs during training."""
    flipped = model(images.flip(-1)).float().flip(-1)
    return (torch.softmax(model(images).float(), dim=1) + torch.softmax(flipped, dim=1)) / 2


def load_teacher(
    path: Path, norm: dict[str, list[float]], config: TrainConfig, device: torch.device
) -> nn.Module:
    """A frozen, BatchNorm-folded model that sees the student's batches: same classes and normalisation."""
    checkpoint = load_checkpoint(path)
    if tuple(checkpoint.classes) != CLASSES or dict(checkpoint.normalization) != norm:
        raise UsageError(f"{path}: a teacher needs the classes {CLASSES} and normalisation {norm}")
    if config.input_size % checkpoint.config.multiple:
        raise UsageError(
            f"{path}: --input-size {config.input_size} is not a multiple of {checkpoint.config.multiple}"
        )
    if not 0.0 <= config.distill <= 1.0:
        raise UsageError(f"--distill {config.distill} must lie between 0 and 1")
    teacher = fuse_batchnorm(build_model(checkpoint, str(path))).to(device)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval()


def _train_epoch(
    model: UNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    device: torch.device,
    use_amp: bool,
    epoch: int,
    on_step: StepCallback | None,
) -> float:
    """One pass over the training data; returns the mean loss."""
    model.train()
    total, batches = 0.0, 0
    for step, (images, masks) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        masks = masks.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(images)
        loss = objective(logits.float(), images, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item()
        batches += 1
        if on_step:
            on_step(epoch, step + 1, len(loader), total / batches)
    return total / max(batches, 1)


def _checkpoint(
    model: UNet,
    config: TrainConfig,
    norm: dict[str, list[float]],
    metrics: dict[str, Any],
    epoch: int,
    resume: dict[str, Any] | None = None,
) -> Checkpoint:
    return Checkpoint(
        config=model.config,
        state_dict=model.state_dict(),
        input_size=config.input_size,
        classes=CLASSES,
        normalization=norm,
        metrics=metrics,
        info={
            "eval_split": "validation",
            "epoch": epoch,
            "train": config.to_info(),
            "parameters": count_parameters(model),
            "torch": str(torch.__version__),
        },
        resume=resume,
    )


def _resume_state(
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
    epochs_done: int,
    best_miou: float,
    best_epoch: int,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epochs_done": epochs_done,
        "best_miou": best_miou,
        "best_epoch": best_epoch,
        "history": json.dumps(history),
        "torch_rng": torch.get_rng_state(),
    }


def _restore(
    path: Path,
    model: UNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
) -> tuple[int, float, int, list[dict[str, Any]]]:
    """Load a `.last.pt` into the live objects; returns (start epoch, best mIoU, best epoch, history)."""
    if not path.exists():
        raise UsageError(f"{path}: nothing to resume (no checkpoint from an earlier run)")
    checkpoint = load_checkpoint(path)
    if checkpoint.resume is None:
        raise BlurcliError(f"{path}: not a resumable checkpoint")
    _load_weights(path, checkpoint, model)
    state = checkpoint.resume
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    history = json.loads(state["history"])
    return int(state["epochs_done"]), float(state["best_miou"]), int(state["best_epoch"]), history


def _load_weights(path: Path, checkpoint: Checkpoint, model: UNet) -> None:
    """Copy a checkpoint's weights into `model` (float16 storage becomes float32); same architecture only."""
    if checkpoint.config != model.config:
        raise UsageError(f"{path}: was trained with {checkpoint.config}, not {model.config}")
    model.load_state_dict(checkpoint.state_dict)


def plot_history(history: list[dict[str, Any]], path: Path, size: tuple[int, int] = (900, 360)) -> None:
    """Draw loss (train, validation) and validation mIoU per epoch into a PNG, with OpenCV only."""
    from blurcli.io import write_image

    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    panels = [
        ("loss", [("train_loss", (31, 119, 180)), ("val_loss", (255, 127, 14))]),
        ("validation mIoU", [("val_mean_iou", (44, 160, 44))]),
    ]
    panel_width = width // len(panels)
    for index, (title, series) in enumerate(panels):
        _draw_panel(canvas, index * panel_width, panel_width, height, title, series, history)
    write_image(path, canvas)


def _draw_panel(
    canvas: np.ndarray,
    left: int,
    width: int,
    height: int,
    title: str,
    series: list[tuple[str, tuple[int, int, int]]],
    history: list[dict[str, Any]],
) -> None:
    margin = 40
    x0, y0, x1, y1 = left + margin, margin, left + width - 15, height - margin
    values = [record[key] for key, _ in series for record in history if record.get(key) is not None]
    if not values:
        return
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    epochs = max(len(history) - 1, 1)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, title, (x0, y0 - 12), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{high:.3f}", (left + 2, y0 + 5), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"{low:.3f}", (left + 2, y1), font, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"epoch {len(history)}", (x1 - 70, y1 + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    for row, (key, colour) in enumerate(series):
        points = [
            (x0 + round((x1 - x0) * i / epochs), y1 - round((y1 - y0) * (record[key] - low) / span))
            for i, record in enumerate(history)
            if record.get(key) is not None
        ]
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(canvas, key, (x0 + 8, y0 + 18 + 16 * row), font, 0.45, colour, 1, cv2.LINE_AA)
