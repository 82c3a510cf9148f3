"""What defines a training run (TrainConfig), and the check that every option is usable before any
data is read."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blurcli.errors import UsageError
from blurcli.model import UNet, UNetConfig, count_parameters
from blurcli.preprocess import CLASSES
from blurcli.spec import output_channels
from blurcli.training.augment import Augmentation

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

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrainConfig:
        """The config `blurcli train`'s options describe: the CLI names its parameters as the fields
        are named, and gives `textured` (the augmentation's) and `loss_size` 0 for the input size."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in options.items() if key in names}
        values["loss_size"] = values.get("loss_size") or None
        if "textured" in options:
            values["augmentation"] = Augmentation(textured=options["textured"])
        return cls(**values)

    def model_config(self) -> UNetConfig:
        outputs = output_channels(CLASSES, self.subjects)
        return UNetConfig(outputs=outputs, width=self.width, depth=self.depth, stem_stride=self.stem_stride)

    def to_info(self) -> dict[str, Any]:
        """JSON-friendly copy for the checkpoint and logs (augmentation ranges included)."""
        return {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(self).items()}


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
