"""How a training run starts: from scratch, from --init's weights (a head model grown a person
output), or from --resume's `.last.pt` with its optimiser, schedule, random state and progress."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blurcli.checkpoint import Checkpoint, build_model, load_checkpoint, save_checkpoint
from blurcli.errors import BlurcliError, UsageError, first_line
from blurcli.model import UNet, UNetConfig
from blurcli.preprocess import CLASSES
from blurcli.training.config import TrainConfig
from blurcli.training.distributed import Ranks, distribute
from blurcli.training.losses import Objective, class_weights_from, load_teacher
from blurcli.training.run_data import RunData, load_run_data
from blurcli.training.run_files import RunPaths, epoch_checkpoint, normalization, remove_log, write_log

Start = tuple[Path, Checkpoint]  # the checkpoint a run starts from, and where it was read
Plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
OLD_BEST_KEY = "best_miou"  # what `.last.pt` files written before "best_score" call it


@dataclass
class Progress:
    """Where a run stands at an epoch boundary; `.last.pt` keeps it, so a run resumes from it."""

    epochs_done: int = 0
    # The figure the best epoch is chosen by (`loop.epoch_score`): LFW's validation mean IoU, plus
    # CCP's validation person IoU when the model has a person output.
    best_score: float = -math.inf
    best_epoch: int = -1  # 1-based; -1 before any epoch
    history: list[dict[str, Any]] = field(default_factory=list)  # the log's records so far


@dataclass(frozen=True)
class Run:
    """What every epoch of a started run works with."""

    config: TrainConfig
    paths: RunPaths
    device: torch.device
    ranks: Ranks
    data: RunData
    model: UNet  # the network itself: validated and saved
    trained: torch.nn.Module  # what the optimiser steps: `model`, or it inside DDP under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: Plateau
    objective: Objective


def start_run(
    config: TrainConfig, model_config: UNetConfig, paths: RunPaths, device: torch.device, ranks: Ranks
) -> tuple[Run, Progress]:
    """Read the data, build the network, optimiser and loss, and restore a resumed run's state;
    a fresh run's `.last.pt` gets the state before any epoch, so its first epoch can resume too."""
    data = load_run_data(config, model_config)
    start = start_from(config, paths)  # --resume's last state or --init's weights; None: from scratch
    model = start_model(start, config, model_config).to(device)
    trained = distribute(model, device, ranks)  # `model` itself, or it inside DDP under torchrun
    optimizer = torch.optim.Adam(trained.parameters(), lr=config.lr)
    scheduler = Plateau(optimizer, mode="min", factor=0.5, patience=config.plateau_patience)
    objective = _objective(config, data, device)
    run = Run(config, paths, device, ranks, data, model, trained, optimizer, scheduler, objective)
    return run, _progress(run, start)


def start_from(config: TrainConfig, paths: RunPaths) -> Start | None:
    """The checkpoint a run starts from: `<out>.last.pt` with --resume (a resumed run already holds
    its start, so --init is then ignored), else --init's, else None (from scratch)."""
    if config.resume:
        if not paths.last.exists():
            raise UsageError(f"{paths.last}: nothing to resume (no checkpoint from an earlier run)")
        checkpoint = load_checkpoint(paths.last)
        if checkpoint.resume is None:
            raise BlurcliError(f"{paths.last}: not a resumable checkpoint")
        return paths.last, checkpoint
    if config.init is not None:
        return config.init, load_checkpoint(config.init)
    return None


def start_model(start: Start | None, config: TrainConfig, model_config: UNetConfig) -> UNet:
    """The network a run trains: a new one, or one holding its start's weights; a head model's
    fine-tuned into a person model first grows a person output (`with_person_output`)."""
    if start is None:
        return UNet(model_config)
    path, checkpoint = start
    if not config.resume and len(checkpoint.subjects) < len(config.subjects):
        build_model(checkpoint, str(path))  # the weights must fit their own network to be grown
        checkpoint = with_person_output(checkpoint)
    return build_model(checkpoint, str(path), model_config)


def with_person_output(checkpoint: Checkpoint) -> Checkpoint:
    """A head-only checkpoint grown a person output, to fine-tune into a person model: the new
    logit starts as (skin + hair) / 2 - background, so it first sees the head as the person."""
    weight, bias = checkpoint.state_dict["head.weight"], checkpoint.state_dict["head.bias"]
    person_weight = (weight[1] + weight[2]) / 2 - weight[0]
    person_bias = (bias[1] + bias[2]) / 2 - bias[0]
    state = {
        **checkpoint.state_dict,
        "head.weight": torch.cat([weight, person_weight[None]]),
        "head.bias": torch.cat([bias, person_bias[None]]),
    }
    config = dataclasses.replace(checkpoint.config, outputs=checkpoint.config.outputs + 1)
    return dataclasses.replace(
        checkpoint, config=config, state_dict=state, subjects=(*checkpoint.subjects, "person")
    )


def _objective(config: TrainConfig, data: RunData, device: torch.device) -> Objective:
    """The loss the run minimises: cross-entropy (class-weighted with --class-weights), with
    --teacher its distillation term, --subject-iou's term, and the person output's."""
    weights = class_weights_from(data.lfw_masks, len(CLASSES)).to(device) if config.class_weights else None
    teacher = (
        None
        if config.teacher is None
        else load_teacher(config.teacher, normalization(), config.input_size, config.distill, device)
    )
    person_weight = config.person_weight if config.person_data is not None else 0.0
    return Objective(weights, teacher, config.distill, config.subject_iou, person_weight)


def _progress(run: Run, start: Start | None) -> Progress:
    """A resumed run's progress, its log rewritten from it; else a fresh run's, its old log removed
    and the state before any epoch saved to `.last.pt`. Only rank 0 writes."""
    if run.config.resume and start is not None:
        progress = restore(start, run.optimizer, run.scheduler)
        if run.ranks.main:
            write_log(run.paths.log, progress.history, "w")
        return progress
    progress = Progress()
    if run.ranks.main:
        remove_log(run.paths.log)
        state = resume_state(run.optimizer, run.scheduler, progress)
        save_checkpoint(run.paths.last, epoch_checkpoint(run.model, run.config, {}, 0, state))
    return progress


def resume_state(optimizer: torch.optim.Optimizer, scheduler: Plateau, progress: Progress) -> dict[str, Any]:
    """What `.last.pt` holds beside the weights to resume at `progress`'s epoch boundary."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epochs_done": progress.epochs_done,
        "best_score": progress.best_score,
        "best_epoch": progress.best_epoch,
        "history": json.dumps(progress.history),
        "torch_rng": torch.get_rng_state(),
    }


def restore(start: Start, optimizer: torch.optim.Optimizer, scheduler: Plateau) -> Progress:
    """Load a `.last.pt`'s optimiser, schedule and random state; returns its progress. Files
    written before the rename keep the best score under OLD_BEST_KEY, and resume as well."""
    path, checkpoint = start
    assert checkpoint.resume is not None
    state = checkpoint.resume
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history = json.loads(state["history"])
        best = state["best_score"] if "best_score" in state else state[OLD_BEST_KEY]
        return Progress(int(state["epochs_done"]), float(best), int(state["best_epoch"]), history)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BlurcliError(f"{path}: damaged resume state ({first_line(error)})") from None
