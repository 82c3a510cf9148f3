"""The checkpoint format and the one path from a checkpoint to a model.

A checkpoint is one `torch.save`d dict of plain values and tensors (no pickled code), read with
`torch.load(weights_only=True)`. It describes itself: architecture, input size, classes,
normalisation, validation figures and the split they came from, and how it was trained.
Inference, fine-tuning (`--init`), `--resume`, `--teacher` and soups all build their network with
`build_model`, so a checkpoint that does not fit is reported in one wording.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from blurcli.errors import BlurcliError
from blurcli.model import UNet, UNetConfig
from blurcli.photo import write_bytes_atomic
from blurcli.preprocess import CLASSES, NORMALIZATION

FORMAT = "blurcli-unet"
FORMAT_VERSION = 1


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
    """Write atomically; `half` stores float tensors as float16 (half the size, same predictions)."""
    tensors = {
        k: v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()
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
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path | str) -> Checkpoint:
    """Read a checkpoint safely (weights_only); anything else is a one-line BlurcliError."""
    path = Path(path)
    if not path.exists():
        raise BlurcliError(f"{path}: no such weights file")
    if path.is_dir():
        raise BlurcliError(f"{path}: is a directory, not a weights file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a damaged or foreign file
        raise BlurcliError(f"{path}: not a readable weights file ({_reason(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BlurcliError(f"{path}: not a blurcli checkpoint")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise BlurcliError(f"{path}: written by a newer blurcli (format {payload['version']}); upgrade")
    try:
        return Checkpoint(
            config=UNetConfig.from_dict(payload["config"]),
            state_dict={
                k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
            },
            input_size=int(payload["input_size"]),
            classes=tuple(payload["classes"]),
            subjects=tuple(payload.get("subjects") or ("head",)),  # older checkpoints: heads only
            normalization=payload["normalization"],
            metrics=payload.get("metrics") or {},
            info=payload.get("info") or {},
            resume=payload.get("resume"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise BlurcliError(f"{path}: damaged blurcli checkpoint (bad field {error})") from None


def _reason(error: BaseException) -> str:
    """The informative line of a torch.load failure, shortened for a one-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    picked = next((line for line in lines if "Unpickler error" in line), lines[0] if lines else "")
    return (picked or type(error).__name__)[:160]


def build_model(checkpoint: Checkpoint, source: str = "weights", config: UNetConfig | None = None) -> UNet:
    """The UNet `config` describes (default: the checkpoint's own architecture) holding the
    checkpoint's weights, in eval mode; weights that do not fit name the tensor and both shapes."""
    model = UNet(config or checkpoint.config)
    load_weights(model, checkpoint.state_dict, source)
    return model.eval()


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy `state_dict` into `model` (float16 storage becomes float32); every tensor must exist on
    both sides with the same shape, else a one-line BlurcliError naming the first that does not."""
    expected = model.state_dict()
    for name, tensor in expected.items():
        found = state_dict.get(name)
        if found is None or tuple(found.shape) != tuple(tensor.shape):
            raise _mismatch(source, name, tuple(tensor.shape), None if found is None else tuple(found.shape))
    for name in state_dict.keys() - expected.keys():
        raise _mismatch(source, name, None, tuple(state_dict[name].shape))
    model.load_state_dict(state_dict)


def _mismatch(
    source: str, name: str, expected: tuple[int, ...] | None, found: tuple[int, ...] | None
) -> BlurcliError:
    def shape(value: tuple[int, ...] | None) -> str:
        return "absent" if value is None else "(" + ", ".join(map(str, value)) + ")"

    return BlurcliError(
        f"{source}: weights do not fit the model: tensor {name} expected {shape(expected)}, "
        f"found {shape(found)} (another architecture?)"
    )
