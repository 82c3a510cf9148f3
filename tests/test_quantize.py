"""`blurcli export --int8`: an int8 model calibrated on training photos only, that blur loads with
its spec and that computes nearly what the float export does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.checkpoint import load_checkpoint
from blurcli.cli import app
from blurcli.errors import BlurcliError
from blurcli.export import export_onnx, to_onnx
from blurcli.photo import read_image, write_image
from blurcli.preprocess import normalize, resize_for_model
from blurcli.quantize import QuantizeOptions, kept_float, quantize
from blurcli.segment import new_segmenter
from blurcli.spec import NetworkSpec
from blurcli.training.calibration import CalibrationSet, calibration_set
from blurcli.training.ccp import load_person_split
from blurcli.training.lfw import load_split
from tests.ccp_fake import make_ccp_dataset

pytest.importorskip("onnx")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
runner = CliRunner()


@pytest.fixture(scope="module")
def ccp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CCP: train photos 0001-0006 and one validation photo (0801)."""
    return make_ccp_dataset(tmp_path_factory.mktemp("ccp"), numbers=[1, 2, 3, 4, 5, 6, 801])


@pytest.fixture(scope="module")
def ccp_train(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CCP with all 800 train photos (the export spreads its pick over them)."""
    return make_ccp_dataset(tmp_path_factory.mktemp("ccp-train"), 800)


@pytest.fixture(scope="module")
def calibration(lfw_dir: Path, ccp_dir: Path) -> CalibrationSet:
    return replace(calibration_set(lfw_dir, ccp_dir, count=3, steps=(2, 1)), wide_size=96)


def _spec(weights: Path) -> NetworkSpec:
    return NetworkSpec.of(load_checkpoint(weights))


def test_the_calibration_photos_are_spread_over_the_training_sets_only(lfw_dir: Path, ccp_dir: Path) -> None:
    chosen = calibration_set(lfw_dir, ccp_dir, count=3, steps=(4, 2))
    lfw, ccp = load_split(lfw_dir, "train").images, load_person_split(ccp_dir, "train", 6).images
    expected = [lfw[0], lfw[4], lfw[8], ccp[0], ccp[2], ccp[4]]
    assert len(chosen.photos) == len(expected)
    for got, wanted in zip(chosen.photos, expected, strict=True):
        np.testing.assert_array_equal(got, wanted)


def test_every_4th_ccp_and_every_8th_lfw_photo_is_seen_at_the_wide_size_too(
    lfw_dir: Path, ccp_dir: Path
) -> None:
    chosen = calibration_set(lfw_dir, ccp_dir, count=6, steps=(1, 1))
    lfw, ccp = load_split(lfw_dir, "train", 6).images, load_person_split(ccp_dir, "train", 6).images
    expected = [ccp[0], ccp[4], lfw[0]]
    assert len(chosen.wide) == len(expected)
    for got, wanted in zip(chosen.wide, expected, strict=True):
        np.testing.assert_array_equal(got, wanted)


def test_calibration_batches_are_the_networks_input_at_model_and_wide_size(
    calibration: CalibrationSet, tiny_weights: Path
) -> None:
    spec = _spec(tiny_weights)
    batches = calibration.batches(spec)
    seen = [(b.shape[2], b.shape[3]) for b in batches]
    assert {max(shape) for shape in seen} == {spec.input_size, 96}
    assert all(h % spec.multiple == 0 and w % spec.multiple == 0 for h, w in seen)
    assert sum(len(b) for b in batches if max(b.shape[2:]) == spec.input_size) == len(calibration.photos)
    assert sum(len(b) for b in batches if max(b.shape[2:]) == 96) == len(calibration.wide) > 0
    first = resize_for_model(calibration.photos[0], spec.input_size, spec.multiple)[0]
    np.testing.assert_array_equal(batches[0][0], normalize(first, spec.mean, spec.std))


def test_an_int8_export_keeps_its_spec_and_blur_loads_it(
    tmp_path: Path, tiny_weights: Path, calibration: CalibrationSet
) -> None:
    export_onnx(tiny_weights, tmp_path / "int8.onnx", calibration.batches)
    segmenter = new_segmenter(str(tmp_path / "int8.onnx"), "cpu")
    assert segmenter.spec == _spec(tiny_weights)
    import onnx

    ops = {node.op_type for node in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_logits_stay_close_to_the_float_exports(tiny_weights: Path, calibration: CalibrationSet) -> None:
    model, spec = to_onnx(load_checkpoint(tiny_weights))
    in_float = new_segmenter(model, "cpu")
    in_int8 = new_segmenter(quantize(model, calibration.batches(spec)), "cpu")
    photo = resize_for_model(read_image(EXAMPLE), spec.input_size, spec.multiple)[0]
    batch = normalize(photo[None], spec.mean, spec.std)
    expected, got = in_float.network(batch), in_int8.network(batch)
    spread = float(expected.max() - expected.min())
    assert np.abs(got - expected).max() <= 0.05 * spread
    assert not np.array_equal(got, expected)  # quantized indeed


def test_the_output_layer_stays_float(tiny_weights: Path, calibration: CalibrationSet) -> None:
    import onnx

    model, spec = to_onnx(load_checkpoint(tiny_weights))
    graph = onnx.load_from_string(quantize(model, calibration.batches(spec)))
    head = next(
        node for node in graph.graph.node if node.name.startswith("/head/") and node.op_type == "Conv"
    )
    weights = next(init for init in graph.graph.initializer if init.name == head.input[1])
    assert weights.data_type == onnx.TensorProto.FLOAT


def test_a_layer_to_keep_float_that_the_model_lacks_is_named(tiny_weights: Path) -> None:
    import onnx

    graph = onnx.load_from_string(to_onnx(load_checkpoint(tiny_weights))[0])
    with pytest.raises(BlurcliError, match="no layer of the model is named /nowhere/"):
        kept_float(graph, ["/head/", "/nowhere/"])


def test_quantizing_without_calibration_photos_is_refused(tiny_weights: Path) -> None:
    model, _ = to_onnx(load_checkpoint(tiny_weights))
    with pytest.raises(BlurcliError, match="needs calibration photos"):
        quantize(model, [], QuantizeOptions())


def test_export_int8_command_makes_a_model_blur_takes(
    tmp_path: Path, tiny_weights: Path, lfw_dir: Path, ccp_train: Path
) -> None:
    out = tmp_path / "tiny-int8.onnx"
    args = [
        "export",
        str(tiny_weights),
        "-o",
        str(out),
        "--int8",
        "--data",
        str(lfw_dir),
        "--person-data",
        str(ccp_train),
    ]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.stdout == "" and "(int8, input 64 px" in done.stderr
    write_image(tmp_path / "a.png", read_image(EXAMPLE)[:64, :96])
    result = runner.invoke(
        app, ["blur", str(tmp_path / "a.png"), "-w", str(out), "-o", str(tmp_path / "b.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b.png").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--int8"], "--int8 needs --data"),
        (["--data", "lfw"], "--data and --person-data calibrate an int8 model: add --int8"),
    ],
)
def test_int8_options_without_their_partner_are_usage_errors(
    tmp_path: Path, tiny_weights: Path, extra: list[str], message: str
) -> None:
    done = runner.invoke(app, ["export", str(tiny_weights), "-o", str(tmp_path / "m.onnx"), *extra])
    assert done.exit_code == 2
    assert message in done.stderr
    assert not (tmp_path / "m.onnx").exists()
