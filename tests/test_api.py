"""The package's public face: a small API, the README's example as written, an inference core that
never loads training code."""

from __future__ import annotations

import dataclasses
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import blurcli
from blurcli.cli import app
from blurcli.metadata import add_output_mark

ROOT = Path(__file__).resolve().parents[1]
# What blur and predict never load: training code (and so torch), and the server's stack (the serve
# extra), which `blurcli serve` alone imports.
NOT_FOR_INFERENCE = (
    "blurcli.training",
    "blurcli.serve",
    "blurcli.queries",
    "blurcli.uploads",
    "blurcli.refusals",
    "blurcli.listening",
    "fastapi",
    "uvicorn",
    "starlette",
)
LOADED = f"print(sorted(m for m in sys.modules if m.startswith({NOT_FOR_INFERENCE!r})))"


@pytest.mark.parametrize(
    "statement",
    [
        "import blurcli",
        "import blurcli.segment",
        "import blurcli.batch, blurcli.render, blurcli.plan",
        "import blurcli.cli",
    ],
)
def test_the_inference_core_imports_nothing_from_training_nor_the_server(statement: str) -> None:
    code = f"{statement}; import sys; {LOADED}"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


@pytest.mark.parametrize(("command", "output"), [("blur", "o.jpg"), ("predict", "o.png")])
def test_blur_and_predict_on_the_command_line_load_no_training_code_nor_the_server(
    tmp_path: Path, tiny_weights: Path, command: str, output: str
) -> None:
    code = (
        "import sys; from blurcli.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        f"{LOADED}"
    )
    args = [
        command,
        str(ROOT / "examples" / "astronaut.jpg"),
        "-o",
        str(tmp_path / output),
        "-w",
        str(tiny_weights),
    ]
    found = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    assert (tmp_path / output).is_file()
    assert found.stdout.strip().splitlines()[-1] == "[]"


def test_the_readme_python_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", readme, re.S)
    assert example is not None, "README.md has no python example"
    shutil.copytree(ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("*_blurred.*"))
    monkeypatch.chdir(tmp_path)
    exec(compile(example.group(1), "README.md", "exec"), {})
    assert blurcli.read_photo("astronaut_blurred.jpg").pixels.shape == (512, 512, 3)
    assert blurcli.read_photo("astronaut_mask.png").pixels.shape == (512, 512)
    assert (tmp_path / "blurred" / "astronaut_blurred.jpg").is_file()


def test_the_public_api_is_small_and_holds_no_training_names() -> None:
    assert len(blurcli.__all__) <= 20
    assert not {"train", "TrainConfig", "evaluate", "load_split", "greedy_soup"} & set(blurcli.__all__)
    for name in blurcli.__all__:
        assert hasattr(blurcli, name), name


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"blurcli {blurcli.__version__}"


def test_train_defaults_are_the_training_configs() -> None:
    """`blurcli train` with no architecture flags trains TrainConfig's recipe (the shipped model's)."""
    from blurcli.cli.train import train
    from blurcli.training import TrainConfig

    defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()}
    config = TrainConfig(data=Path("d"), out=Path("o"))
    shared = defaults.keys() & {field.name for field in dataclasses.fields(TrainConfig)}
    assert len(shared) >= 24  # every option of a run is a field of the config, under its name
    for name in shared - {"data", "out", "loss_size", "device"}:
        assert defaults[name] == getattr(config, name), name
    assert (defaults["loss_size"] or None) == config.loss_size
    assert (config.width, config.input_size, config.loss_size, config.plateau_patience) == (11, 192, 256, 8)


def test_library_and_cli_write_the_same_blurred_photo(tmp_path: Path, tiny_weights: Path) -> None:
    photo = ROOT / "examples" / "astronaut.jpg"
    segmenter = blurcli.new_segmenter(str(tiny_weights), "cpu")
    blurcli.write_photo(tmp_path / "lib.jpg", blurcli.blur(blurcli.read_photo(photo), segmenter))
    result = CliRunner().invoke(
        app, ["blur", str(photo), "-o", str(tmp_path / "cli.jpg"), "-w", str(tiny_weights)]
    )
    assert result.exit_code == 0, result.output
    # The same bytes, but for the mark the CLI writes into its outputs' metadata (for reruns).
    marked = add_output_mark((tmp_path / "lib.jpg").read_bytes(), "blurred")
    assert marked == (tmp_path / "cli.jpg").read_bytes()
    # ... and what both wrote is a photo of the input's size (not, say, two equal empty files).
    assert blurcli.read_photo(tmp_path / "lib.jpg").pixels.shape == blurcli.read_photo(photo).pixels.shape
