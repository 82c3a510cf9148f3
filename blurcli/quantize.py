"""An exported ONNX model -> its int8 twin: static QDQ quantization in ONNX Runtime, calibrated on
photos the model was trained on, its spec kept in the metadata (the file alone is still a complete
model). Used by `blurcli export --int8`; needs the onnx package (the train extra).

Convolutions run on 8-bit integers: weights per output channel (int8), activations per tensor
(uint8), their ranges taken from the calibration batches. The recipe (`QuantizeOptions`' defaults,
measured against the others in docs/int8.md): each activation's range clipped at its 99.999th
percentile, and the output layer kept float32 (its logits decide the mask's edge and the second
look's blobs; quantizing them moved masks most and saves least).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from blurcli.errors import BlurcliError
from blurcli.spec import METADATA_KEY

Method = Literal["minmax", "percentile", "entropy"]
METHODS: tuple[Method, ...] = ("minmax", "percentile", "entropy")


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize: the calibration `method` (`percentile` clips each activation's range at
    that percentile of its values), the layers kept float32 (node-name prefixes as traced from
    model.py: `/stem/stem.0/` is the first convolution, `/head/` the output layer), signed
    activations, 7-bit weights (`reduce_range`), activation ranges symmetric about 0, and whether
    only convolutions are quantized (not pooling, resizing, concatenation)."""

    method: Method = "percentile"
    percentile: float = 99.999
    keep_float: tuple[str, ...] = ("/head/",)
    signed_activations: bool = False
    reduce_range: bool = False
    symmetric_activations: bool = False
    conv_only: bool = False


class _Batches:
    """The calibration batches as ONNX Runtime's CalibrationDataReader: one batch per `set_range`
    (its histograms cannot stack batches of different shapes; one at a time they are merged, and
    only one batch's activations are held)."""

    def __init__(self, batches: Sequence[np.ndarray]) -> None:
        self._all = list(batches)
        self._batches: Iterator[np.ndarray] = iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._batches = iter(self._all[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"pixels": batch}


def quantize(
    model: bytes, calibration: Sequence[np.ndarray], options: QuantizeOptions = QuantizeOptions()
) -> bytes:
    """A serialised blurcli ONNX model and normalised (N, 3, h, w) float32 calibration batches (any
    h and w; one shape per batch) -> the serialised int8 (QDQ) model, its blurcli metadata kept."""
    import onnx
    from onnxruntime.quantization import QuantFormat, quant_pre_process, quantize_static

    if not calibration:
        raise BlurcliError("int8 quantization needs calibration photos (none given)")
    if options.method not in METHODS:
        raise BlurcliError(f"calibration method {options.method}: use {', '.join(METHODS)}")
    source = onnx.load_from_string(model)
    metadata = {prop.key: prop.value for prop in source.metadata_props if prop.key == METADATA_KEY}
    with (
        tempfile.TemporaryDirectory(prefix="blurcli-int8-") as folder,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        prepared, quantized = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        quant_pre_process(source, prepared)  # shapes inferred, graph simplified: what quantize_static wants
        graph = onnx.load(prepared)
        quantize_static(
            graph,
            quantized,
            _Batches(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            nodes_to_exclude=kept_float(graph, options.keep_float),
            **_settings(options),
        )
        result = onnx.load(quantized)
    onnx.helper.set_model_props(result, metadata)
    return result.SerializeToString()


def _settings(options: QuantizeOptions) -> dict[str, Any]:
    """quantize_static's arguments for `options` (other than the model, data and exclusions)."""
    from onnxruntime.quantization import CalibrationMethod, QuantType

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }
    return {
        "op_types_to_quantize": ["Conv"] if options.conv_only else None,
        "reduce_range": options.reduce_range,
        "activation_type": QuantType.QInt8 if options.signed_activations else QuantType.QUInt8,
        "weight_type": QuantType.QInt8,
        "calibrate_method": methods[options.method],
        "extra_options": {
            "ActivationSymmetric": options.symmetric_activations,
            "CalibPercentile": options.percentile,
            "CalibStridedMinMax": 1,  # one batch per pass (see _Batches)
        },
    }


def kept_float(graph: Any, prefixes: Sequence[str]) -> list[str]:
    """The names of the nodes of `graph` (an onnx ModelProto) that start with one of `prefixes`:
    those stay float32. A prefix that names no node is a BlurcliError (a typo would quantize all)."""
    names = [node.name for node in graph.graph.node]
    unknown = [prefix for prefix in prefixes if not any(name.startswith(prefix) for name in names)]
    if unknown:
        raise BlurcliError(f"no layer of the model is named {', '.join(unknown)}")
    return [name for name in names if name.startswith(tuple(prefixes))]
