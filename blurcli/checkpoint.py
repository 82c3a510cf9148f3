"""The checkpoint format and the one path from a checkpoint to a model.

A checkpoint is one `torch.save`d dict of plain values and tensors (no pickled code), read with
`torch.load(weights_only=True)`. It describes itself: architecture, input size, classes,
normalisation, validation figures and the split they came from, and how it was trained.
Inference, fine-tuning (`--init`), `--resume`, `--teacher` and soups all build their network with
`build_model`, so a checkpoint that does not fit is reported in one wording.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blurcli.errors import BlurcliError, first_line
from blurcli.files import write_file
from blurcli.model import UNet, UNetConfig
from blurcli.paths import os_reason
from blurcli.preprocess import CLASSES, NORMALIZATION
from blurcli.spec import output_channels
from blurcli.weights import TORCH_MAGIC, foreign_kind

FORMAT = "blurcli-unet"
FORMAT_VERSION = 2  # 2: the config names its output channels `outputs` (1: num_classes)


@dataclass
class Checkpoint:
    """Weights plus everything needed to use them; `resume` holds optimiser state for --resume."""

    config: UNetConfig
    state_dict: Mapping[str, torch.Tensor]
    input_size: int
    classes: tuple[str, ...] = CLASSES
    # What the network's outputs mean: "head" is the softmax over `classes` (LFW's background, skin,
    # hair: the head is every class but background); "person" is one more channel, a person logit.
    subjects: tuple[str, ...] = ("head",)
    normalization: Mapping[str, Any] = field(
        default_factory=lambda: {k: list(v) for k, v in NORMALIZATION.items()}
    )
    metrics: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    resume: Mapping[str, Any] | None = None


def save_checkpoint(path: Path, checkpoint: Checkpoint, half: bool = False) -> None:
    """Write atomically; `half` stores float tensors as float16 (half the size, same predictions),
    but for one with a value past float16's range, which would become infinite. A file system's
    refusal is a one-line BlurcliError naming `path`."""
    tensors = {
        k: v.detach().cpu().half() if half and _fits_half(v) else v.detach().cpu()
        for k, v in checkpoint.state_dict.items()
    }
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": checkpoint.config.to_dict(),
        "state_dict": tensors,
        "input_size": int(checkpoint.input_size),
        "classes": list(checkpoint.classes),
        "subjects": list(checkpoint.subjects),
        "normalization": {k: [float(x) for x in v] for k, v in checkpoint.normalization.items()},
        "metrics": dict(checkpoint.metrics),
        "info": dict(checkpoint.info),
        "resume": dict(checkpoint.resume) if checkpoint.resume is not None else None,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_file(path, buffer.getvalue())


def _fits_half(tensor: torch.Tensor) -> bool:
    """Whether a tensor holds real numbers that float16 stores without turning any infinite."""
    if not tensor.is_floating_point():
        return False
    return tensor.numel() == 0 or bool(tensor.abs().max() <= torch.finfo(torch.float16).max)


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint safely (weights_only) and check that it describes a network blurcli can
    build; anything else is a one-line BlurcliError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise BlurcliError(f"{path}: no such weights file") from None
        if isinstance(error, IsADirectoryError):
            raise BlurcliError(f"{path}: is a directory, not a weights file") from None
        raise BlurcliError(f"{path}: cannot read ({os_reason(error, path)})") from None
    foreign = None if head.startswith(TORCH_MAGIC) else foreign_kind(head, "a PyTorch file")
    if foreign:
        raise BlurcliError(f"{path}: not a blurcli checkpoint ({foreign})")
    try:
        with warnings.catch_warnings():  # torch's advice is for its own developers, not our users
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a damaged or foreign file
        if isinstance(error, OSError) and error.filename:  # the file system's, not the format's
            raise BlurcliError(f"{path}: cannot read ({os_reason(error, path)})") from None
        raise BlurcliError(f"{path}: not a blurcli checkpoint ({_reason(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BlurcliError(f"{path}: not a blurcli checkpoint (a PyTorch file of another kind)")
    version = payload.get("version", 0)
    if not isinstance(version, int):
        raise BlurcliError(f"{path}: damaged blurcli checkpoint (bad field version {version!r})")
    if version > FORMAT_VERSION:
        raise BlurcliError(f"{path}: written by a newer blurcli (format {version}); upgrade")
    try:
        checkpoint = Checkpoint(
            config=UNetConfig.from_dict(payload["config"]),
            state_dict={
                str(k): v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
            },
            input_size=int(payload["input_size"]),
            classes=tuple(str(name) for name in payload["classes"]),
            subjects=tuple(payload.get("subjects") or ("head",)),  # older checkpoints: heads only
            normalization={k: [float(x) for x in payload["normalization"][k]] for k in ("mean", "std")},
            metrics=payload.get("metrics") or {},
            info=payload.get("info") or {},
            resume=payload.get("resume"),
        )
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as error:
        raise BlurcliError(f"{path}: damaged blurcli checkpoint (bad field {error})") from None
    problem = _describe_problem(checkpoint)
    if problem:
        raise BlurcliError(f"{path}: damaged blurcli checkpoint ({problem})")
    return checkpoint


def is_checkpoint(path: Path) -> bool:
    """Whether `path` is a blurcli checkpoint by its format field (a run may replace it): the
    tensors are mapped, not read, and not checked as `load_checkpoint` checks them."""
    try:
        with path.open("rb") as handle:
            if not handle.read(4).startswith(TORCH_MAGIC):
                return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # unreadable, or not a zip torch.load can map: not one of ours
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def _reason(error: BaseException) -> str:
    """torch.load's failure in a few words: the line that says what was refused, or the first
    sentence of what broke, without torch's advice to its own developers."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, pickle.UnpicklingError):
        detail = [
            line for line in lines[1:] if not line.startswith(("Check the documentation", "Please file"))
        ]
        return "holds more than tensors and plain values" + (f": {detail[0]}" if detail else "")
    if isinstance(error, OSError) and error.strerror:  # torch's reader: OSError(22, 'Invalid argument')
        lines = [error.strerror]
    text = re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "", lines[0] if lines else "")
    text = text.split(". ")[0].rstrip(".")
    if len(text) < 8:  # KeyError('101'), EOFError(): the type says more
        text = f"{type(error).__name__} {text}".strip()
    return f"damaged or truncated: {text[:120]}"


# Bounds no trained model comes near; beyond them a file would only allocate absurd memory.
MAX_INPUT_SIZE = 4096
MAX_WIDTH = 1024
MAX_DEPTH = 8


def _describe_problem(checkpoint: Checkpoint) -> str | None:
    """What makes a checkpoint unusable, or None: the network it asks for, its outputs against
    its classes, its normalisation, weights that are not finite numbers."""
    config = checkpoint.config
    bounds = {
        "in_channels": (3, 3),
        "outputs": (1, 64),
        "width": (1, MAX_WIDTH),
        "depth": (1, MAX_DEPTH),
        "stem_stride": (1, 8),
    }
    for name, (low, high) in bounds.items():
        value = getattr(config, name)
        if not low <= value <= high:
            return (
                f"config {name} {value}, not {low}"
                if low == high
                else f"config {name} {value} outside {low}..{high}"
            )
    if not 1 <= checkpoint.input_size <= MAX_INPUT_SIZE:
        return f"input_size {checkpoint.input_size} outside 1..{MAX_INPUT_SIZE}"
    unknown = [s for s in checkpoint.subjects if s not in ("head", "person")]
    if unknown or not checkpoint.subjects:
        return f"subjects {list(checkpoint.subjects)} (known: head, person)"
    if not checkpoint.classes or config.outputs != output_channels(checkpoint.classes, checkpoint.subjects):
        classes, subjects = list(checkpoint.classes), list(checkpoint.subjects)
        return f"{config.outputs} outputs for classes {classes} and subjects {subjects}"
    for key in ("mean", "std"):
        values = checkpoint.normalization[key]
        if len(values) != config.in_channels or not all(math.isfinite(v) for v in values):
            return f"normalization {key} {values}"
    if not all(v > 0 for v in checkpoint.normalization["std"]):
        return f"normalization std {checkpoint.normalization['std']}"
    name = non_finite_tensor(checkpoint.state_dict)  # NaN would blur the whole photo, silently
    return None if name is None else f"tensor {name} holds NaN or infinite values"


def non_finite_tensor(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first real-number tensor holding NaN or an infinity, or None."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def build_model(checkpoint: Checkpoint, source: str = "weights", config: UNetConfig | None = None) -> UNet:
    """The UNet `config` describes (default: the checkpoint's own architecture) holding the
    checkpoint's weights, in eval mode; weights that do not fit name the tensor and both shapes.

    The shapes are compared on a network without memory ("meta" tensors) before the real one is
    built, so a file that describes an enormous network fails in a line, not in an allocation."""
    config = config or checkpoint.config
    try:
        with torch.device("meta"):
            blueprint = UNet(config)
    except (RuntimeError, ValueError, OverflowError) as error:  # sizes past what torch can describe
        reason = first_line(error, 120)
        raise BlurcliError(f"{source}: cannot build the network its config describes ({reason})") from None
    check_fit(blueprint, checkpoint.state_dict, source)
    model = UNet(config)
    try:
        model.load_state_dict(checkpoint.state_dict)  # float16 storage becomes float32
    except RuntimeError as error:  # what check_fit does not foresee: torch's lines, the last says what
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[-1] if lines else type(error).__name__
        raise BlurcliError(f"{source}: weights do not fit the model: {detail[:200]}") from None
    return model.eval()


def check_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a one-line BlurcliError naming the first tensor `state_dict` lacks, has extra, or
    holds in another shape or kind (a real number where the model has one, or an integer)."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        found = state_dict.get(name)
        if not isinstance(found, torch.Tensor) or tuple(found.shape) != tuple(tensor.shape):
            shape = tuple(found.shape) if isinstance(found, torch.Tensor) else None
            raise _mismatch(source, name, tuple(tensor.shape), shape)
        if _kind(found) != _kind(tensor):
            raise BlurcliError(
                f"{source}: weights do not fit the model: tensor {name} expected {_kind(tensor)} "
                f"numbers, found {found.dtype} (another kind of file?)"
            )
    for name in state_dict.keys() - expected.keys():
        raise _mismatch(source, name, None, tuple(state_dict[name].shape))


def _kind(tensor: torch.Tensor) -> str:
    if tensor.is_complex():
        return "complex"
    return "real" if tensor.is_floating_point() else "integer" if tensor.dtype != torch.bool else "bool"


def _mismatch(
    source: str, name: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None
) -> BlurcliError:
    def shape(value: tuple[int, ...] | None) -> str:
        return "absent" if value is None else "(" + ", ".join(map(str, value)) + ")"

    return BlurcliError(
        f"{source}: weights do not fit the model: tensor {name} expected {shape(expected)}, "
        f"found {shape(found)} (another architecture?)"
    )
