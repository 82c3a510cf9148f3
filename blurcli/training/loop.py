"""Training loop: cross-entropy, Adam, ReduceLROnPlateau, best-by-validation-mIoU checkpoints,
resumable at every epoch boundary. Validation scores refined masks, the figure `blurcli eval` reports.
Under torchrun the same loop runs on every rank (`distributed.py`); rank 0 writes the files."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from blurcli.checkpoint import (
    Checkpoint,
    build_model,
    is_checkpoint,
    load_checkpoint,
    non_finite_tensor,
    save_checkpoint,
)
from blurcli.errors import BlurcliError, UsageError, first_line
from blurcli.model import UNet, UNetConfig, count_parameters
from blurcli.paths import check_outputs, check_writable, os_reason
from blurcli.preprocess import CLASSES, NORMALIZATION
from blurcli.refine import RefineOptions
from blurcli.segment import new_segmenter
from blurcli.training.augment import Augmentation
from blurcli.training.ccp import PersonSplit, load_person_split, split_numbers
from blurcli.training.dataset import SegmentationDataset
from blurcli.training.distributed import (
    Ranks,
    barrier,
    distribute,
    process_group,
    rank_device,
    ranks_from_environment,
    sum_across,
)
from blurcli.training.evaluate import evaluate
from blurcli.training.lfw import SplitData, load_split, load_unlabelled
from blurcli.training.losses import Objective, class_weights_from, load_teacher
from blurcli.training.plot import is_curves, plot_history
from blurcli.training.targets import IGNORE, ccp_codes, lfw_codes, with_teacher
from blurcli.training.teacher import FOLDERS, read_teacher_labels

# Bounds of what `train` accepts: the datasets' photos are at most 825 px high, and the shipped
# model has under a million parameters (one of these many times over is a typing mistake).
MAX_SIDE = 1024
MAX_PARAMETERS = 200_000_000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; stored in the checkpoint so runs can be reproduced.

    The defaults are the shipped model's recipe (architecture, schedule, loss size, augmentation);
    weights/README.md gives the full command, and how its snapshots were averaged.
    """

    data: Path
    out: Path
    epochs: int = 134
    batch_size: int = 16
    lr: float = 2e-3
    input_size: int = 192
    width: int = 11
    depth: int = 4
    stem_stride: int = 2
    seed: int = 0
    device: str | None = None
    workers: int = 2
    class_weights: bool = False
    augment: bool = True
    augmentation: Augmentation = field(default_factory=Augmentation)
    plateau_patience: int = 8
    limit: int | None = None
    resume: bool = False
    half: bool = True
    init: Path | None = None  # start from these weights (fine-tuning); same architecture
    teacher: Path | None = None  # distil: also match this model's probabilities on each batch
    distill: float = 0.5  # weight of the teacher's term; the labels' cross-entropy gets the rest
    loss_size: int | None = 256  # labels at this side, logits enlarged to it (None: the input size)
    subject_iou: float = 0.0  # weight of a soft-IoU term on the subject (skin + hair vs background)
    snapshots: bool = False  # also keep every epoch's weights (<out stem>.eNNN.pt), for soups
    person_data: Path | None = None  # Clothing Co-Parsing: also learn a person output from it
    person_weight: float = 1.0  # weight of the person output's loss beside LFW's classes
    person_repeat: int = 1  # views of each person photo per epoch, to balance LFW's many close-ups
    person_labels: Path | None = None  # `blurcli label`'s teacher labels, where our labels say nothing

    @property
    def subjects(self) -> tuple[str, ...]:
        """The outputs the model gets: LFW's head classes, and a person logit with `person_data`."""
        return ("head", "person") if self.person_data is not None else ("head",)

    def model_config(self) -> UNetConfig:
        outputs = len(CLASSES) + ("person" in self.subjects)
        return UNetConfig(
            num_classes=outputs, width=self.width, depth=self.depth, stem_stride=self.stem_stride
        )

    def to_info(self) -> dict[str, Any]:
        """JSON-friendly copy for the checkpoint and logs (augmentation ranges included)."""
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
    """Train a UNet on LFW Part Labels; keep the best checkpoint by validation mean IoU.

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


def check_config(config: TrainConfig) -> UNetConfig:
    """The network `config` trains, once every value is known to be usable; else a UsageError
    naming the option."""
    if config.epochs < 1 or config.batch_size < 1 or config.person_repeat < 1:
        raise UsageError("--epochs, --batch-size and --person-repeat must be at least 1")
    if config.width < 1 or config.depth < 1 or config.stem_stride < 1:
        raise UsageError("--width, --depth and --stem-stride must be at least 1")
    if not 0 <= config.seed <= MAX_SEED:
        raise UsageError(f"--seed {config.seed}: use a whole number from 0 to {MAX_SEED}")
    if config.workers < 0:
        raise UsageError(f"--workers {config.workers}: use 0 (load in this process) or more")
    for option, value, high in (
        ("--lr", config.lr, math.inf),
        ("--distill", config.distill, 1.0),
        ("--subject-iou", config.subject_iou, math.inf),
        ("--person-weight", config.person_weight, math.inf),
    ):
        if not (math.isfinite(value) and 0.0 <= value <= high):
            bound = f"from 0 to {high:g}" if math.isfinite(high) else "a finite number from 0 up"
            raise UsageError(f"{option} {value}: use {bound}")
    if config.person_labels is not None:
        if config.person_data is None:
            raise UsageError("--person-labels teaches the person output: give --person-data too")
        if not (config.person_labels / "labels.json").is_file():
            raise UsageError(
                f"{config.person_labels}: no teacher labels here (write them with `blurcli label`)"
            )
    model_config = config.model_config()
    multiple = model_config.multiple
    if not multiple <= config.input_size <= MAX_SIDE or config.input_size % multiple:
        raise UsageError(
            f"--input-size {config.input_size}: use a multiple of {multiple} "
            f"(--stem-stride x 2^--depth) from {multiple} to {MAX_SIDE}"
        )
    if config.loss_size is not None and config.loss_size < config.input_size:
        raise UsageError(f"--loss-size {config.loss_size} is smaller than the input size {config.input_size}")
    if config.loss_size is not None and config.loss_size > MAX_SIDE:
        raise UsageError(f"--loss-size {config.loss_size}: use 0 (the input size) or at most {MAX_SIDE}")
    with torch.device("meta"):  # counted without allocating: --width 100000 must not take the RAM
        parameters = count_parameters(UNet(model_config))
    if parameters > MAX_PARAMETERS:
        raise UsageError(
            f"--width {config.width} --depth {config.depth}: {parameters:,} parameters, more than "
            f"{MAX_PARAMETERS:,}; the shipped model has under a million"
        )
    return model_config


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

    train_split = load_split(config.data, "train", limit=config.limit)
    val_split = load_split(config.data, "validation", limit=config.limit)
    people, people_val = _person_data(config)
    faces = train_split if people is None else replace(train_split, masks=lfw_codes(train_split.masks))
    if config.person_labels is not None and people is not None:
        faces, people = taught(config.person_labels, config.data, faces, people)
    norm = {"mean": list(NORMALIZATION["mean"]), "std": list(NORMALIZATION["std"])}
    dataset = SegmentationDataset(
        faces,
        config.input_size,
        model_config.multiple,
        NORMALIZATION,
        augment=config.augment,
        seed=config.seed,
        augmentation=config.augmentation,
        label_size=config.loss_size,
        people=people,
        person_repeat=config.person_repeat,
    )

    start = _start_from(config, paths)  # --resume's last state or --init's weights; None: from scratch
    if start is not None and not config.resume and len(start[1].subjects) < len(config.subjects):
        build_model(start[1], str(start[0]))  # the weights must fit their own network to be grown
        start = (start[0], with_person_output(start[1]))  # fine-tune a head model into a person model
    model = UNet(model_config) if start is None else build_model(start[1], str(start[0]), model_config)
    model = model.to(device)
    trained = distribute(model, device, ranks)  # `model` itself, or it inside DDP under torchrun
    optimizer = torch.optim.Adam(trained.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=config.plateau_patience
    )
    weights = class_weights_from(train_split.masks, len(CLASSES)).to(device) if config.class_weights else None
    teacher = (
        None
        if config.teacher is None
        else load_teacher(config.teacher, norm, config.input_size, config.distill, device)
    )
    person_weight = config.person_weight if people is not None else 0.0
    objective = Objective(weights, teacher, config.distill, config.subject_iou, person_weight)
    start_epoch, best_miou, best_epoch, history = 0, -math.inf, -1, []
    if config.resume and start is not None:
        start_epoch, best_miou, best_epoch, history = _restore(start, optimizer, scheduler)
        if ranks.main:
            _write_log(paths.log, history, "w")
    elif ranks.main:
        try:
            paths.log.unlink(missing_ok=True)
        except OSError as error:
            raise BlurcliError(f"{paths.log}: cannot remove ({os_reason(error, paths.log)})") from None
        # The state before any epoch, so an interruption in the first epoch can resume too.
        resume = _resume_state(optimizer, scheduler, 0, best_miou, best_epoch, history)
        save_checkpoint(paths.last, _checkpoint(model, config, norm, {}, 0, resume))

    use_amp = device.type == "cuda"
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            started = time.perf_counter()
            dataset.set_epoch(epoch)
            loader = training_loader(dataset, config, epoch, ranks, device)
            train_loss = train_epoch(trained, loader, optimizer, objective, device, use_amp, epoch, on_step)
            train_loss = float(sum_across(np.array([train_loss]))[0]) / ranks.world  # equal steps per rank
            why = _divergence(train_loss, model)
            if why is not None:  # before anything of this epoch is saved, "best" included
                raise BlurcliError(
                    f"epoch {epoch + 1}: {why}: training diverged; lower --lr (it was {config.lr:g})"
                )
            state = _checkpoint(model, config, norm, {}, epoch + 1)
            segmenter = new_segmenter(
                state, str(device), subject="head", backend="torch", source="validation"
            )
            # Refined, as `blurcli eval` scores (and `blur` uses) masks; the loss stays bilinear.
            batch = max(config.batch_size, 32)
            val = evaluate(segmenter, val_split, batch, refine=RefineOptions(), ranks=ranks)
            person = None
            if people_val is not None:
                person = evaluate(
                    replace(segmenter, subject="person"),
                    people_val,
                    batch,
                    refine=RefineOptions(),
                    ranks=ranks,
                )
                val = {**val, "person": person}
            scheduler.step(val["loss"] + (person["loss"] if person else 0.0))
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
            if person is not None:
                record |= {"val_person_loss": person["loss"], "val_person_iou": person["iou"]["person"]}
                record["val_person_boundary_f"] = person["boundary_f"]["person"]
            history.append(record)
            # The best epoch: LFW's validation mIoU, plus the person IoU when there is a person output.
            score = val["mean_iou"] + (person["iou"]["person"] if person else 0.0)
            improved = score > best_miou
            if improved:
                best_miou, best_epoch = score, epoch + 1
            if ranks.main and (improved or config.snapshots):
                checkpoint = _checkpoint(model, config, norm, val, epoch + 1)
                if improved:
                    save_checkpoint(paths.best, checkpoint, half=config.half)
                if config.snapshots:
                    save_checkpoint(paths.snapshot(epoch + 1), checkpoint, half=config.half)
            record["best"] = improved
            if ranks.main:
                _write_log(paths.log, [record], "a")
                plot_history(history, paths.plot)
                resume = _resume_state(optimizer, scheduler, epoch + 1, best_miou, best_epoch, history)
                save_checkpoint(paths.last, _checkpoint(model, config, norm, val, epoch + 1, resume))
            if on_epoch:
                on_epoch(record)
    except KeyboardInterrupt:
        # `last` already holds the state at the end of the previous epoch: resuming from an epoch
        # boundary gives exactly the model an uninterrupted run would have given.
        raise TrainingInterrupted(paths.last, epoch) from None

    barrier()  # rank 0 has written the best checkpoint
    best = load_checkpoint(paths.best) if paths.best.exists() else None
    return TrainResult(
        paths=paths,
        best_epoch=best_epoch,
        best_metrics=best.metrics if best else {},
        history=history,
        parameters=count_parameters(model),
    )


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


def _write_log(path: Path, records: list[dict[str, Any]], mode: str) -> None:
    """Write (mode "w") or append ("a") JSON lines, strict JSON: a figure that is NaN or infinite
    (a validation loss gone bad, say) is null. The file system's refusal names the log."""
    lines = [json.dumps(_nulled(record), allow_nan=False) + "\n" for record in records]
    try:
        with path.open(mode) as log:
            log.writelines(lines)
    except OSError as error:
        raise BlurcliError(f"{path}: cannot write ({os_reason(error, path)})") from None


def _nulled(value: Any) -> Any:
    """`value` with every float that is NaN or infinite, however deep, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _nulled(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulled(item) for item in value]
    return value


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
        subjects=config.subjects,
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


def _start_from(config: TrainConfig, paths: RunPaths) -> tuple[Path, Checkpoint] | None:
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


def _restore(
    start: tuple[Path, Checkpoint],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
) -> tuple[int, float, int, list[dict[str, Any]]]:
    """Load a `.last.pt`'s optimiser, schedule and random state; returns (start epoch, best mIoU,
    best epoch, history)."""
    path, checkpoint = start
    assert checkpoint.resume is not None
    state = checkpoint.resume
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history = json.loads(state["history"])
        return int(state["epochs_done"]), float(state["best_miou"]), int(state["best_epoch"]), history
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise BlurcliError(f"{path}: damaged resume state ({first_line(error)})") from None


def _person_data(
    config: TrainConfig,
) -> tuple[tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]] | None, PersonSplit | None]:
    """With --person-data: CCP's training photos with their target codes, and its validation split."""
    if config.person_data is None:
        return None, None
    if config.subject_iou:
        raise UsageError("--subject-iou scores LFW's classes only; it does not combine with --person-data")
    people = load_person_split(config.person_data, "train", limit=config.limit)
    validation = load_person_split(config.person_data, "validation", limit=config.limit)
    return (people.images, tuple(ccp_codes(mask) for mask in people.masks)), validation


def taught(
    labels: Path,
    data: Path,
    faces: SplitData,
    people: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]],
) -> tuple[SplitData, tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]]:
    """LFW's and CCP's training codes with the teacher's labels (`blurcli label`) where ours are
    silent, and the unlabelled LFW photos it labelled added to LFW's (their classes unsupervised)."""
    maps = read_teacher_labels(labels / FOLDERS["lfw"], faces.names, [m.shape for m in faces.masks])
    faces = replace(
        faces, masks=np.stack([with_teacher(c, m) for c, m in zip(faces.masks, maps, strict=True)])
    )
    extra = labels / FOLDERS["lfw-unlabelled"]
    if extra.is_dir() and (wanted := sorted(path.stem for path in extra.glob("*.png"))):
        names, images = load_unlabelled(data)
        index = {name: i for i, name in enumerate(names)}
        if missing := [name for name in wanted if name not in index]:
            raise BlurcliError(f"{extra / missing[0]}.png: no such unlabelled photo in {data}")
        images = images[[index[name] for name in wanted]]
        maps = read_teacher_labels(extra, wanted, [image.shape[:2] for image in images])
        codes = np.stack([with_teacher(np.full(m.shape, IGNORE, np.uint8), m) for m in maps])
        faces = SplitData(
            faces.names + tuple(wanted),
            np.concatenate([faces.images, images]),
            np.concatenate([faces.masks, codes]),
        )
    if (labels / FOLDERS["ccp"]).is_dir():
        photos, codes = people
        names = [f"{number:04d}" for number in split_numbers("train")][: len(photos)]
        maps = read_teacher_labels(labels / FOLDERS["ccp"], names, [c.shape for c in codes])
        people = (photos, tuple(with_teacher(c, m) for c, m in zip(codes, maps, strict=True)))
    return faces, people


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
    config = dataclasses.replace(checkpoint.config, num_classes=checkpoint.config.num_classes + 1)
    return dataclasses.replace(
        checkpoint, config=config, state_dict=state, subjects=(*checkpoint.subjects, "person")
    )
