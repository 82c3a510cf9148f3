"""The training loop: cross-entropy, Adam, ReduceLROnPlateau; after every epoch the validation
figures, the best checkpoint (by `epoch_score`), and a resumable `.last.pt`. Validation scores
refined masks, the figure `blurcli eval` reports. Under torchrun the same loop runs on every rank
(`distributed.py`); rank 0 writes the files."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from blurcli.checkpoint import load_checkpoint, non_finite_tensor, save_checkpoint
from blurcli.errors import BlurcliError, first_line
from blurcli.model import UNet, UNetConfig, count_parameters
from blurcli.paths import check_writable
from blurcli.refine import RefineOptions
from blurcli.segment import Segmenter, new_segmenter
from blurcli.training.config import TrainConfig, check_config
from blurcli.training.dataset import SegmentationDataset
from blurcli.training.distributed import (
    Ranks,
    barrier,
    process_group,
    rank_device,
    ranks_from_environment,
    sum_across,
)
from blurcli.training.evaluate import evaluate
from blurcli.training.losses import Objective
from blurcli.training.plot import plot_history
from blurcli.training.run_files import RunPaths, check_run_outputs, epoch_checkpoint, log_record, write_log
from blurcli.training.start import Progress, Run, resume_state, start_run


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


def train(
    config: TrainConfig,
    on_step: StepCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train a UNet on LFW Part Labels; keep the best epoch's checkpoint: the highest validation mean
    IoU on LFW, plus the person IoU on CCP's validation photos when there is a person output.

    Every option is checked, and a file written and removed where each output goes, before any
    data is read: a run that cannot finish fails at once and leaves nothing behind. Under torchrun
    this process is one rank of a distributed run; only rank 0 writes and calls back."""
    model_config = check_config(config)
    paths = RunPaths.for_output(config.out)
    check_run_outputs(config, paths)
    ranks = ranks_from_environment()
    device = rank_device(config.device, ranks)
    if ranks.main:
        check_writable(paths.outputs(config.epochs if config.snapshots else None))
    else:
        on_step = on_epoch = None
    try:
        with process_group(ranks, device):
            return _train(config, model_config, paths, device, ranks, on_step, on_epoch)
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not _out_of_memory(error):
            raise
        raise BlurcliError(
            f"out of memory on {device} ({first_line(error)}); lower --batch-size, --input-size or --width"
        ) from None


def _out_of_memory(error: BaseException) -> bool:
    text = str(error)
    return (
        isinstance(error, torch.OutOfMemoryError)
        or "can't allocate memory" in text
        or "out of memory" in text
    )


def _train(
    config: TrainConfig,
    model_config: UNetConfig,
    paths: RunPaths,
    device: torch.device,
    ranks: Ranks,
    on_step: StepCallback | None,
    on_epoch: EpochCallback | None,
) -> TrainResult:
    """`train` once its options and output folder are known to be good."""
    torch.manual_seed(config.seed)
    run, progress = start_run(config, model_config, paths, device, ranks)
    epoch = progress.epochs_done
    try:
        for epoch in range(progress.epochs_done, config.epochs):
            _epoch(run, progress, epoch, on_step, on_epoch)
    except KeyboardInterrupt:
        # `last` already holds the state at the end of the previous epoch: resuming from an epoch
        # boundary gives exactly the model an uninterrupted run would have given.
        raise TrainingInterrupted(paths.last, epoch) from None
    barrier()  # rank 0 has written the best checkpoint
    best = load_checkpoint(paths.best) if paths.best.exists() else None
    return TrainResult(
        paths=paths,
        best_epoch=progress.best_epoch,
        best_metrics=best.metrics if best else {},
        history=progress.history,
        parameters=count_parameters(run.model),
    )


def _epoch(
    run: Run, progress: Progress, epoch: int, on_step: StepCallback | None, on_epoch: EpochCallback | None
) -> None:
    """Epoch `epoch` (0-based): train, validate, step the schedule, keep the files up to date."""
    started = time.perf_counter()
    train_loss = _learn(run, epoch, on_step)
    val, person = validate(run)
    run.scheduler.step(val["loss"] + (person["loss"] if person else 0.0))
    lr = run.optimizer.param_groups[0]["lr"]
    record = log_record(epoch + 1, train_loss, val, person, lr, time.perf_counter() - started)
    progress.history.append(record)
    improved = _keep_best(progress, epoch_score(val, person), epoch + 1)
    record["best"] = improved
    progress.epochs_done = epoch + 1
    _save(run, progress, val, improved)
    if on_epoch:
        on_epoch(record)


def _learn(run: Run, epoch: int, on_step: StepCallback | None) -> float:
    """One pass over the training data; the mean loss across ranks, once it is known to be finite
    (else a BlurcliError before anything of this epoch is saved, "best" included)."""
    run.data.training.set_epoch(epoch)
    loader = training_loader(run.data.training, run.config, epoch, run.ranks, run.device)
    use_amp = run.device.type == "cuda"
    train_loss = train_epoch(
        run.trained, loader, run.optimizer, run.objective, run.device, use_amp, epoch, on_step
    )
    train_loss = float(sum_across(np.array([train_loss]))[0]) / run.ranks.world  # equal steps per rank
    why = _divergence(train_loss, run.model)
    if why is not None:
        raise BlurcliError(
            f"epoch {epoch + 1}: {why}: training diverged; lower --lr (it was {run.config.lr:g})"
        )
    return train_loss


def validation_segmenter(model: UNet, config: TrainConfig, device: torch.device) -> Segmenter:
    """The epoch's weights as the torch backend runs them (BatchNorm folded, as the export ships
    them), through the one road to a network; its LFW head, the person by `replace`."""
    state = epoch_checkpoint(model, config, {}, 0)
    return new_segmenter(state, str(device), subject="head", backend="torch", source="validation")


def validate(run: Run) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """LFW's validation figures (with the person's under "person"), and CCP's person figures when
    the model has a person output, else None."""
    segmenter = validation_segmenter(run.model, run.config, run.device)
    # Refined, as `blurcli eval` scores (and `blur` uses) masks; the loss stays bilinear.
    batch = max(run.config.batch_size, 32)
    val = evaluate(segmenter, run.data.validation, batch, refine=RefineOptions(), ranks=run.ranks)
    if run.data.people_validation is None:
        return val, None
    person = evaluate(
        replace(segmenter, subject="person"),
        run.data.people_validation,
        batch,
        refine=RefineOptions(),
        ranks=run.ranks,
    )
    return {**val, "person": person}, person


def epoch_score(val: dict[str, Any], person: dict[str, Any] | None) -> float:
    """What the best epoch is chosen by: LFW's validation mean IoU, plus CCP's validation person
    IoU when the model has a person output, so a person model's best epoch is good at both."""
    return val["mean_iou"] + (person["iou"]["person"] if person else 0.0)


def _keep_best(progress: Progress, score: float, epoch: int) -> bool:
    """Whether `epoch` (1-based) scored higher than every epoch before it; if so it is the best."""
    improved = score > progress.best_score
    if improved:
        progress.best_score, progress.best_epoch = score, epoch
    return improved


def _save(run: Run, progress: Progress, val: dict[str, Any], improved: bool) -> None:
    """On rank 0, the files after epoch `progress.epochs_done`: the best checkpoint if it
    `improved`, its snapshot with --snapshots, the log's line, the curves, and `.last.pt`."""
    if not run.ranks.main:
        return
    config, paths, epoch = run.config, run.paths, progress.epochs_done
    if improved or config.snapshots:
        checkpoint = epoch_checkpoint(run.model, config, val, epoch)
        if improved:
            save_checkpoint(paths.best, checkpoint, half=config.half)
        if config.snapshots:
            save_checkpoint(paths.snapshot(epoch), checkpoint, half=config.half)
    write_log(paths.log, progress.history[-1:], "a")
    plot_history(progress.history, paths.plot)
    state = resume_state(run.optimizer, run.scheduler, progress)
    save_checkpoint(paths.last, epoch_checkpoint(run.model, config, val, epoch, state))


def _divergence(loss: float, model: UNet) -> str | None:
    """Why an epoch's model cannot be kept, or None: a loss or a weight that is not finite."""
    if not math.isfinite(loss):
        return f"the training loss is {loss}"
    name = non_finite_tensor(model.state_dict())
    return None if name is None else f"weight {name} is not finite"


def training_loader(
    dataset: SegmentationDataset, config: TrainConfig, epoch: int, ranks: Ranks, device: torch.device
) -> DataLoader:
    """The epoch's batches: the whole training set shuffled, or under torchrun this rank's shard of
    it (DistributedSampler, reshuffled each epoch; shards padded to equal length, so every rank
    takes the same number of steps)."""
    sampler = None
    count = len(dataset)
    if ranks.world > 1:
        sampler = DistributedSampler(dataset, ranks.world, ranks.rank, shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
        count = len(sampler)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=count > config.batch_size,
        num_workers=config.workers,
        generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        pin_memory=device.type == "cuda",
    )


def train_epoch(
    model: torch.nn.Module,
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
