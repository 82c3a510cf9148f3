"""Run a blurcli model in ONNX Runtime: what `blur` and `predict` use, with no torch imported.

An exported model carries its preprocessing (input size, multiple, normalisation, classes,
subjects) in its metadata under the key `blurcli`, so the file alone is a complete model. A torch
checkpoint given instead is exported once (`export.py`, which needs torch) and cached in the user
data dir under its sha256.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blurcli.device import check_device
from blurcli.errors import BlurcliError, UsageError, first_line
from blurcli.files import read_bytes
from blurcli.weights import ONNX_MAGIC, TORCH_MAGIC, foreign_kind

if TYPE_CHECKING:
    from blurcli.checkpoint import Checkpoint

METADATA_KEY = "blurcli"  # the model's preprocessing, JSON, in the ONNX file's metadata_props


@dataclass(frozen=True)
class NetworkSpec:
    """What the network expects and gives, as the checkpoint it came from recorded it."""

    input_size: int
    multiple: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    subjects: tuple[str, ...]

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> NetworkSpec:
        """What a torch checkpoint records of its network's input and outputs."""
        return cls(
            input_size=checkpoint.input_size,
            multiple=checkpoint.config.multiple,
            mean=tuple(checkpoint.normalization["mean"]),
            std=tuple(checkpoint.normalization["std"]),
            classes=tuple(checkpoint.classes),
            subjects=tuple(checkpoint.subjects),
        )

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "format": 1})


class OnnxNetwork:
    """An ONNX Runtime session: normalised (N, 3, h, w) float32 in, logits out."""

    def __init__(self, model: bytes, providers: list[Any]) -> None:
        self._model = model
        self._providers = providers
        self._sessions: dict[int, Any] = {}
        self._threads = 0  # 0: ONNX Runtime's default (one per physical core)
        self.session = self._session(0)

    def _session(self, threads: int) -> Any:
        import onnxruntime

        if threads not in self._sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.log_severity_level = 3  # errors only: its warnings are for its developers
            try:
                self._sessions[threads] = onnxruntime.InferenceSession(
                    self._model, options, providers=self._providers
                )
            except Exception as error:  # ONNX Runtime raises its own types for bad files
                raise BlurcliError(f"damaged ONNX model ({first_line(error)})") from None
        return self._sessions[threads]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._session(self._threads).run(None, {"pixels": batch})[0]

    def threads(self, count: int | None) -> None:
        self._threads = count or 0


def load_onnx(path: Path, device: str | None = None) -> tuple[OnnxNetwork, NetworkSpec]:
    """A model file (ONNX, or a torch checkpoint exported once) -> its network and spec on `device`."""
    model, source = onnx_model(path)
    return onnx_network(model, device, source)


def onnx_model(path: Path) -> tuple[bytes, str]:
    """A model file -> the ONNX model's bytes and the file they were read from: a torch checkpoint
    is exported once (cached), so the bytes can go to processes that have neither it nor torch."""
    if is_torch_file(path):
        from blurcli.export import cached_export  # needs torch: a clear message when it is absent

        path = cached_export(path)
    return read_bytes(path), str(path)


def onnx_network(
    model: bytes, device: str | None = None, source: str = "weights"
) -> tuple[OnnxNetwork, NetworkSpec]:
    """A serialised blurcli ONNX model -> its network on `device` and its spec; `source` names it."""
    if not model.startswith(ONNX_MAGIC):
        kind = foreign_kind(model[:64], "an ONNX model or a PyTorch file")
        raise BlurcliError(f"{source}: not a blurcli model ({kind})")
    try:
        network = OnnxNetwork(model, providers(device))
    except BlurcliError as error:
        raise BlurcliError(f"{source}: {error}") from None
    bad = non_finite_weight(model)
    if bad is not None:
        raise BlurcliError(f"{source}: damaged blurcli model (weight {bad} holds NaN or infinite values)")
    return network, read_spec(network.session, source)


# ONNX's real-number tensor types (TensorProto.DataType) -> how raw_data lays their values out.
_REAL_TYPES = {1: "<f4", 10: "<f2", 11: "<f8"}
_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer
_TENSOR_TYPE, _TENSOR_NAME = 2, 8
_TENSOR_VALUES = {4: "<f4", 10: "<f8"}  # float_data, double_data; raw_data (9) is by type


def non_finite_weight(model: bytes) -> str | None:
    """The name of the first weight (initializer) of a serialised ONNX model that holds NaN or an
    infinity (every mask would be NaN: a photo blurred all over), or None.

    The weights are read from the protobuf's wire format: ONNX Runtime does not show them, and the
    onnx package that parses them is not installed where `blur` runs. Running the model once on a
    probe input instead would not do: whether an infinite weight reaches the output depends on
    the input (after a ReLU, -inf x a positive number is dropped, -inf x 0 is NaN). A file too
    damaged to walk is left to ONNX Runtime, which has refused it already."""
    try:
        graphs = [value for field, value in _fields(memoryview(model)) if field == _MODEL_GRAPH]
        for field, tensor in _fields(graphs[-1]) if graphs else ():
            if field == _GRAPH_INITIALIZER and (name := _non_finite(tensor)) is not None:
                return name
    except (ValueError, IndexError, TypeError):
        return None
    return None


def _non_finite(tensor: memoryview) -> str | None:
    """A TensorProto's name if its real numbers are not all finite, else None."""
    fields = list(_fields(tensor))
    kind = next((value for field, value in fields if field == _TENSOR_TYPE), 0)
    if kind not in _REAL_TYPES:
        return None
    layouts = {9: _REAL_TYPES[kind], **_TENSOR_VALUES}
    values = [np.frombuffer(data, layouts[field]) for field, data in fields if field in layouts]
    if all(np.isfinite(part).all() for part in values):
        return None
    name = next((bytes(data) for field, data in fields if field == _TENSOR_NAME), b"(unnamed)")
    return name.decode("utf-8", "replace")


def _fields(message: memoryview) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: an int for a varint, else the bytes."""
    pos = 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire in (1, 2, 5):
            size, pos = _varint(message, pos) if wire == 2 else ({1: 8, 5: 4}[wire], pos)
            if pos + size > len(message):
                raise ValueError("a field runs past the end of its message")
            value, pos = message[pos : pos + size], pos + size
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield key >> 3, value


def _varint(message: memoryview, pos: int) -> tuple[int, int]:
    """A protobuf varint at `pos` -> (value, the position after it)."""
    value = shift = 0
    while True:
        byte = message[pos]
        value, pos, shift = value | (byte & 0x7F) << shift, pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def is_torch_file(path: Path) -> bool:
    """Whether a weights file is a torch checkpoint (a zip or pickle), not an ONNX model."""
    try:
        with path.open("rb") as handle:
            return handle.read(4).startswith(TORCH_MAGIC)
    except OSError:
        return False


def read_spec(session: Any, path: Path | str) -> NetworkSpec:
    """The preprocessing a blurcli export recorded in the model's metadata."""
    recorded = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if recorded is None:
        raise BlurcliError(f"{path}: an ONNX model, but not one blurcli exported (blurcli export makes one)")
    inputs = [(node.name, len(node.shape)) for node in session.get_inputs()]
    if inputs != [("pixels", 4)]:
        found = ", ".join(f"{name} ({rank}-D)" for name, rank in inputs) or "none"
        raise BlurcliError(
            f"{path}: blurcli's metadata, but not its network: it takes {found}, not one 4-D 'pixels' "
            "(blurcli export makes a model blur can run)"
        )
    try:
        spec = json.loads(recorded)
        return NetworkSpec(
            input_size=int(spec["input_size"]),
            multiple=int(spec["multiple"]),
            mean=tuple(float(x) for x in spec["mean"]),
            std=tuple(float(x) for x in spec["std"]),
            classes=tuple(str(x) for x in spec["classes"]),
            subjects=tuple(str(x) for x in spec["subjects"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise BlurcliError(f"{path}: damaged blurcli metadata ({error})") from None


def cuda_available() -> bool:
    """Whether this ONNX Runtime can run on CUDA (the onnxruntime-gpu package)."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def providers(device: str | None) -> list[Any]:
    """ONNX Runtime's execution providers for --device: CUDA where asked (or, for auto, where
    onnxruntime-gpu is installed), else the CPU."""
    spec = check_device(device)
    if spec == "cpu" or (spec == "auto" and not cuda_available()):
        return ["CPUExecutionProvider"]
    if not cuda_available():
        raise UsageError(f"--device {spec}: this ONNX Runtime has no CUDA (pip install onnxruntime-gpu)")
    index = int(spec.partition(":")[2] or 0)
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
