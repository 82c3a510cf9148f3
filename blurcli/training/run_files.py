"""The files a training run writes beside its best checkpoint: where they go, which files already
there a run may replace, and what goes into its checkpoints and its JSON-lines log."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blurcli.checkpoint import Checkpoint, is_checkpoint
from blurcli.errors import BlurcliError
from blurcli.model import UNet, count_parameters
from blurcli.paths import check_outputs, os_reason
from blurcli.preprocess import CLASSES, NORMALIZATION
from blurcli.training.config import TrainConfig
from blurcli.training.plot import is_curves


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

    def outputs(self, snapshots: int | None = None) -> list[Path]:
        """Every file a run writes, with the snapshot of epoch `snapshots` (the longest name)."""
        return [self.best, self.last, self.log, self.plot] + ([self.snapshot(snapshots)] if snapshots else [])

    def snapshot(self, epoch: int) -> Path:
        """Where `--snapshots` keeps the weights after `epoch` (1-based), beside the best checkpoint."""
        stem = self.best.with_suffix("")
        return stem.with_name(f"{stem.name}.e{epoch:03d}.pt")

    def replaceable(self, snapshots: int = 0) -> dict[Path, Callable[[Path], bool]]:
        """Every file a run writes (with `snapshots` epochs' snapshots) -> the test of whether a file
        already there is one an earlier run wrote, which this run may replace."""
        files = {self.best: is_checkpoint, self.last: is_checkpoint, self.log: is_log, self.plot: is_curves}
        return files | {self.snapshot(epoch): is_checkpoint for epoch in range(1, snapshots + 1)}


def check_run_outputs(config: TrainConfig, paths: RunPaths) -> None:
    """A UsageError, before any data is read, where a file the run writes would replace a file of
    its datasets (anything inside --data, --person-data, --person-labels), a checkpoint it reads
    (--init, --teacher), or a file that no earlier run wrote (`RunPaths.replaceable`)."""
    reads = [config.teacher] + ([] if config.resume else [config.init])  # --resume ignores --init
    check_outputs(
        paths.replaceable(config.epochs if config.snapshots else 0),
        [path for path in reads if path is not None],
        {"--data": config.data, "--person-data": config.person_data, "--person-labels": config.person_labels},
    )


def is_log(path: Path) -> bool:
    """Whether `path` is a training log a run may replace: JSON lines of epochs, or empty."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(1 << 16)
        if not first:
            return True  # a run resumed before its first epoch ended writes no line
        record = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"epoch", "train_loss"} <= record.keys()


def normalization() -> dict[str, list[float]]:
    """The input normalisation as checkpoints store it (lists: JSON-friendly, as teachers are compared)."""
    return {"mean": list(NORMALIZATION["mean"]), "std": list(NORMALIZATION["std"])}


def epoch_checkpoint(
    model: UNet,
    config: TrainConfig,
    metrics: dict[str, Any],
    epoch: int,
    resume: dict[str, Any] | None = None,
) -> Checkpoint:
    """The checkpoint of `model` after `epoch` (0: before the first) with its validation figures;
    with `resume` (optimiser, schedule, progress), the `.last.pt` a run resumes from."""
    return Checkpoint(
        config=model.config,
        state_dict=model.state_dict(),
        input_size=config.input_size,
        classes=CLASSES,
        subjects=config.subjects,
        normalization=normalization(),
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


def log_record(
    epoch: int,
    train_loss: float,
    val: dict[str, Any],
    person: dict[str, Any] | None,
    lr: float,
    seconds: float,
) -> dict[str, Any]:
    """The log's line for `epoch` (1-based): its losses and LFW's validation figures, CCP's person
    figures when the model has a person output; the loop adds whether it was the best so far."""
    record = {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val["loss"],
        "val_pixel_accuracy": val["pixel_accuracy"],
        "val_mean_iou": val["mean_iou"],
        "val_subject_iou": val["subject_iou"],
        "val_iou": val["iou"],
        "lr": lr,
        "seconds": seconds,
    }
    if person is not None:
        record |= {"val_person_loss": person["loss"], "val_person_iou": person["iou"]["person"]}
        record["val_person_boundary_f"] = person["boundary_f"]["person"]
    return record


def write_log(path: Path, records: list[dict[str, Any]], mode: str) -> None:
    """Write (mode "w") or append ("a") JSON lines, strict JSON: a figure that is NaN or infinite
    (a validation loss gone bad, say) is null. The file system's refusal names the log."""
    lines = [json.dumps(_nulled(record), allow_nan=False) + "\n" for record in records]
    try:
        with path.open(mode) as log:
            log.writelines(lines)
    except OSError as error:
        raise BlurcliError(f"{path}: cannot write ({os_reason(error, path)})") from None


def remove_log(path: Path) -> None:
    """Remove an earlier run's log (a new run starts its own); the file system's refusal names it."""
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise BlurcliError(f"{path}: cannot remove ({os_reason(error, path)})") from None


def _nulled(value: Any) -> Any:
    """`value` with every float that is NaN or infinite, however deep, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulled(item) for item in value]
    return value
