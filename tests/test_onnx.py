"""blur and predict run the model in ONNX Runtime, exported from the one UNet: same numbers as
torch, no torch imported, torch checkpoints exported once and cached, export for users."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.checkpoint import load_checkpoint
from blurcli.cli import app
from blurcli.errors import BlurcliError
from blurcli.export import to_onnx
from blurcli.paths import data_home
from blurcli.photo import read_image, write_image
from blurcli.preprocess import normalize
from blurcli.segment import new_segmenter
from blurcli.spec import METADATA_KEY
from blurcli.weights import default_weights, resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "astronaut.jpg"
runner = CliRunner()
NO_TORCH = (
    "import sys; sys.modules['torch'] = None; from blurcli.cli import main; sys.argv[0] = 'blurcli'; main()"
)


def _no_torch(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process where `import torch` fails, as in an inference-only install."""
    command = [sys.executable, "-c", NO_TORCH, *(str(a) for a in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def _inputs() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    photo = read_image(EXAMPLE)
    real = normalize(np.stack([photo[:192, :128], photo[100:292, 200:328]]), (0.5,) * 3, (0.25,) * 3)
    noise = rng.normal(0, 1, (3, 3, 96, 160)).astype(np.float32)
    return [real, noise]


@pytest.mark.parametrize("which", ["tiny", "shipped"])
def test_the_export_computes_what_the_torch_module_does(which: str, tiny_weights: Path) -> None:
    path = tiny_weights if which == "tiny" else resolve_checkpoint(None)
    checkpoint = load_checkpoint(path)
    in_torch = new_segmenter(checkpoint, "cpu", backend="torch")
    in_onnx = new_segmenter(to_onnx(checkpoint)[0], "cpu")
    for batch in _inputs():
        np.testing.assert_allclose(in_onnx.network(batch), in_torch.network(batch), atol=1e-4, rtol=0)
    photo = read_image(EXAMPLE)
    masks = [(s.foreground(photo) * 255 + 0.5).astype(np.uint8) for s in (in_onnx, in_torch)]
    assert np.abs(masks[0].astype(int) - masks[1]).max() <= 1
    assert ((masks[0] >= 128) == (masks[1] >= 128)).mean() > 0.9999


def test_every_kind_of_weights_takes_the_one_road_to_either_backend(tiny_weights: Path) -> None:
    checkpoint = load_checkpoint(tiny_weights)
    onnx_bytes = to_onnx(checkpoint)[0]
    made = {
        "path, onnx": new_segmenter(str(tiny_weights), "cpu"),
        "path, torch": new_segmenter(tiny_weights, "cpu", backend="torch"),
        "bytes": new_segmenter(onnx_bytes, "cpu"),
        "checkpoint, onnx": new_segmenter(checkpoint, "cpu", backend="onnx"),
        "checkpoint, torch": new_segmenter(checkpoint, "cpu", backend="torch"),
    }
    batch = _inputs()[1]
    expected = made["path, onnx"].network(batch)
    for name, segmenter in made.items():
        assert type(segmenter.network).__name__ == ("TorchNetwork" if "torch" in name else "OnnxNetwork")
        assert segmenter.spec == made["path, onnx"].spec, name
        np.testing.assert_allclose(segmenter.network(batch), expected, atol=1e-4, rtol=0, err_msg=name)


def test_the_torch_backend_runs_a_shipped_models_torch_twin() -> None:
    segmenter = new_segmenter("lfw", "cpu", backend="torch")
    assert type(segmenter.network).__name__ == "TorchNetwork" and segmenter.subject == "head"


def test_a_backend_that_cannot_run_the_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BlurcliError, match="ONNX bytes run in ONNX Runtime"):
        new_segmenter(default_weights().read_bytes(), "cpu", backend="torch")
    with pytest.raises(BlurcliError, match="backend tensorrt: use auto, onnx, torch"):
        new_segmenter(None, "cpu", backend="tensorrt")  # type: ignore[arg-type]
    alone = tmp_path / "alone.onnx"
    alone.write_bytes(default_weights().read_bytes())
    with pytest.raises(BlurcliError, match=r"alone\.onnx: an ONNX model; the torch backend runs its torch"):
        new_segmenter(str(alone), "cpu", backend="torch")


@pytest.mark.parametrize("subject", ["person", "head"])
def test_shipped_onnx_models_are_exports_of_their_checkpoints(subject: str) -> None:
    shipped = new_segmenter(device="cpu", subject=subject)
    fresh = new_segmenter(to_onnx(load_checkpoint(resolve_checkpoint(None, subject=subject)))[0], "cpu")
    for batch in _inputs():
        np.testing.assert_allclose(shipped.network(batch), fresh.network(batch), atol=1e-5, rtol=0)
    assert (shipped.input_size, shipped.subjects) == (fresh.input_size, fresh.subjects)


def test_blur_and_predict_never_import_torch(tmp_path: Path) -> None:
    for command, out in (("blur", "b.jpg"), ("predict", "m.png")):
        done = _no_torch(command, EXAMPLE, "-o", tmp_path / out)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / out).stat().st_size > 0


def test_train_and_eval_say_what_to_install_without_torch(tmp_path: Path) -> None:
    for args in (("train", "--data", tmp_path, "--out", tmp_path / "m.pt"), ("eval", "--data", tmp_path)):
        done = _no_torch(*args)
        assert done.returncode == 1
        assert done.stderr.strip().endswith('pip install "blurcli[train]"'), done.stderr
        assert "Traceback" not in done.stderr


def test_a_torch_checkpoint_is_exported_once_and_cached(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.png", read_image(EXAMPLE)[:64, :96])
    first = runner.invoke(
        app, ["blur", str(tmp_path / "a.png"), "-w", str(tiny_weights), "-o", str(tmp_path / "1.png")]
    )
    assert first.exit_code == 0, first.output
    cached = list((data_home() / "onnx").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".onnx"
    stamp = cached[0].stat().st_mtime_ns
    second = runner.invoke(
        app, ["blur", str(tmp_path / "a.png"), "-w", str(tiny_weights), "-o", str(tmp_path / "2.png")]
    )
    assert second.exit_code == 0 and cached[0].stat().st_mtime_ns == stamp
    assert (tmp_path / "1.png").read_bytes() == (tmp_path / "2.png").read_bytes()


def test_a_cache_that_cannot_hold_the_export_says_to_set_blurcli_home(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "home").write_text("a file where the data dir should be")
    monkeypatch.setenv("BLURCLI_HOME", str(tmp_path / "home"))
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(app, ["blur", str(tmp_path / "a.png"), "-w", str(tiny_weights), "--device", "cpu"])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "cannot keep the model exported from" in line and line.endswith(
        "set BLURCLI_HOME to a writable folder"
    )


def test_export_command_makes_a_model_blur_takes(tmp_path: Path, tiny_weights: Path) -> None:
    done = runner.invoke(app, ["export", str(tiny_weights), "-o", str(tmp_path / "tiny.onnx")])
    assert done.exit_code == 0, done.output
    write_image(tmp_path / "a.png", read_image(EXAMPLE)[:64, :96])
    for weights, out in ((tmp_path / "tiny.onnx", "x.png"), (tiny_weights, "y.png")):
        result = runner.invoke(
            app, ["blur", str(tmp_path / "a.png"), "-w", str(weights), "-o", str(tmp_path / out)]
        )
        assert result.exit_code == 0, result.output
    assert (tmp_path / "x.png").read_bytes() == (tmp_path / "y.png").read_bytes()


@pytest.mark.parametrize("output", ["m.pt", "link.pt", "sub/../m.pt"])
def test_export_refuses_to_overwrite_its_checkpoint(tmp_path: Path, tiny_weights: Path, output: str) -> None:
    checkpoint = tmp_path / "m.pt"
    checkpoint.write_bytes(tiny_weights.read_bytes())
    (tmp_path / "link.pt").symlink_to(checkpoint)
    (tmp_path / "sub").mkdir()
    done = runner.invoke(app, ["export", str(checkpoint), "-o", str(tmp_path / output)])
    assert done.exit_code == 2
    refusal = f"{tmp_path / output}: refusing to overwrite an input file; give -o another name"
    assert done.stderr == f"error: {refusal}\n"
    assert checkpoint.read_bytes() == tiny_weights.read_bytes()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_an_onnx_model_with_weights_that_are_not_finite_is_refused(
    tmp_path: Path, tiny_weights: Path, value: float
) -> None:
    checkpoint = load_checkpoint(tiny_weights)
    checkpoint.state_dict["downs.0.1.0.0.weight"].view(-1)[5] = value  # past a ReLU: a probe could miss it
    model, _ = to_onnx(checkpoint)
    (tmp_path / "nan.onnx").write_bytes(model)
    refusal = r"^\S*nan\.onnx: damaged blurcli model \(weight \S+ holds NaN or infinite values\)$"
    with pytest.raises(BlurcliError, match=refusal):
        new_segmenter(str(tmp_path / "nan.onnx"), "cpu")


def test_an_onnx_file_blurcli_did_not_export_is_named(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["pixels"], ["logits"])],
        "plain",
        [onnx.helper.make_tensor_value_info("pixels", onnx.TensorProto.FLOAT, None)],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)],
    )
    (tmp_path / "plain.onnx").write_bytes(onnx.helper.make_model(graph).SerializeToString())
    with pytest.raises(BlurcliError, match=r"plain\.onnx: an ONNX model, but not one blurcli exported"):
        new_segmenter(str(tmp_path / "plain.onnx"), "cpu")


def test_blurcli_metadata_on_another_network_is_refused_once_before_any_photo(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["image"], ["logits"])],
        "other",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [1, 3, 8, 8])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None)],
    )
    model = onnx.helper.make_model(graph)
    spec = default_segmenter_spec()
    onnx.helper.set_model_props(model, {METADATA_KEY: spec})
    (tmp_path / "other.onnx").write_bytes(model.SerializeToString())
    for index in range(3):
        write_image(tmp_path / f"p{index}.png", np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(app, ["blur", *(str(tmp_path / f"p{i}.png") for i in range(3)), "-w",
                                 str(tmp_path / "other.onnx"), "-o", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "other.onnx: blurcli's metadata, but not its network: it takes image (4-D)" in line


def default_segmenter_spec() -> str:
    """The metadata a blurcli export records, read from the shipped model."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(default_weights()), providers=["CPUExecutionProvider"])
    return session.get_modelmeta().custom_metadata_map[METADATA_KEY]


def test_thread_settings_change_the_session_not_the_numbers() -> None:
    segmenter = new_segmenter(device="cpu")
    batch = _inputs()[0]
    default = segmenter.network(batch)
    with segmenter.threads(1):
        single = segmenter.network(batch)
    np.testing.assert_allclose(default, single, atol=1e-5, rtol=0)
