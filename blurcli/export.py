"""Export a torch checkpoint to the ONNX model `blur` and `predict` run (ONNX Runtime, no torch).

The graph is traced from the one UNet module with the checkpoint's weights, BatchNorm folded;
batch, height and width stay free. The preprocessing goes into the file's metadata
(`spec.METADATA_KEY`). With calibration batches the model is quantized to int8 (`quantize.py`).
Needs torch and onnx: `pip install "blurcli[train]"`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blurcli.errors import BlurcliError
from blurcli.files import write_bytes_atomic, write_file
from blurcli.paths import HOME_ENV, data_home, os_reason, refuse_overwriting
from blurcli.spec import METADATA_KEY, NetworkSpec
from blurcli.weights import sha256_of

if TYPE_CHECKING:
    from blurcli.checkpoint import Checkpoint

OPSET = 17
_NEEDS_TRAIN = 'needs torch and onnx to export it to ONNX: pip install "blurcli[train]"'
# The network's spec -> normalised (N, 3, h, w) float32 batches that calibrate its int8 ranges.
Calibration = Callable[[NetworkSpec], Sequence[np.ndarray]]


def export_onnx(checkpoint_path: Path, out: Path, calibration: Calibration | None = None) -> NetworkSpec:
    """Write `checkpoint_path`'s model as ONNX to `out` (atomically), int8 when `calibration` is
    given (`quantize.quantize` with its recipe); returns what it records. `out` naming the
    checkpoint itself (through links or `..` too) is a UsageError."""
    refuse_overwriting([out], [checkpoint_path], "give -o another name")
    model, spec = _exported(checkpoint_path)
    if calibration is not None:
        from blurcli.quantize import quantize

        model = quantize(model, calibration(spec))
    write_file(out, model)
    return spec


def _exported(checkpoint_path: Path) -> tuple[bytes, NetworkSpec]:
    """A torch checkpoint file -> its serialised ONNX model and spec (`to_onnx`)."""
    try:
        from blurcli.checkpoint import load_checkpoint
    except ImportError:
        raise BlurcliError(f"{checkpoint_path}: a torch checkpoint; blurcli {_NEEDS_TRAIN}") from None
    return to_onnx(load_checkpoint(checkpoint_path), str(checkpoint_path))


def to_onnx(checkpoint: Checkpoint, source: str = "weights") -> tuple[bytes, NetworkSpec]:
    """A checkpoint -> the serialised ONNX model (its preprocessing in the metadata) and its spec."""
    try:
        import onnx
        import torch

        from blurcli.checkpoint import build_model
        from blurcli.model import fuse_batchnorm
    except ImportError:
        raise BlurcliError(f"{source}: a torch checkpoint; blurcli {_NEEDS_TRAIN}") from None
    model = fuse_batchnorm(build_model(checkpoint, source)).eval()
    spec = NetworkSpec.of(checkpoint)
    side = -(-checkpoint.input_size // spec.multiple) * spec.multiple
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes are for torch's developers
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, side, side),),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes={name: {0: "batch", 2: "height", 3: "width"} for name in ("pixels", "logits")},
        )
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, {METADATA_KEY: spec.to_json()})
    return graph.SerializeToString(), spec


def cached_export(checkpoint_path: Path) -> Path:
    """The ONNX export of a torch checkpoint, made once and kept in the data dir under its sha256."""
    target = data_home() / "onnx" / f"{sha256_of(checkpoint_path)[:16]}-{checkpoint_path.stem}.onnx"
    if not target.is_file():
        model, _ = _exported(checkpoint_path)
        try:
            write_bytes_atomic(target, model)
        except OSError as error:
            raise BlurcliError(
                f"{target.parent}: cannot keep the model exported from {checkpoint_path} there "
                f"({os_reason(error, target.parent)}); set {HOME_ENV} to a writable folder"
            ) from None
    return target
