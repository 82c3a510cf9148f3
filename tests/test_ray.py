"""Batch blurring on Ray Data (blurcli.ray_data): the CLI's outputs and records from Ray workers.

One local Ray cluster (2 CPUs) serves the module; the photos, and the single-process CLI's outputs
and JSON lines to compare with, are made once. Tests that need no cluster run without Ray.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.batch import EXISTS, FileResult
from blurcli.cli import app
from blurcli.encode import encode_image
from blurcli.errors import BlurcliError, UsageError
from blurcli.metadata import add_output_mark
from blurcli.photo import write_image
from blurcli.plan import Job
from blurcli.ray_data import (
    PHOTO_EXTENSIONS,
    ProcessPhotos,
    RayOptions,
    import_ray,
    process_with_ray,
    run_jobs_on_ray,
)
from blurcli.render import BlurTask, PredictTask
from blurcli.segment import model_bytes

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray's own
runner = CliRunner()
BAD = "cut.jpg"


def _photo(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small photos (JPEG, PNG, WebP) and a JPEG cut in half."""
    folder = tmp_path_factory.mktemp("photos")
    for index, name in enumerate(["a.jpg", "b.png", "c.webp", "d.jpg"]):
        write_image(folder / name, _photo(index))
    data = (folder / "a.jpg").read_bytes()
    (folder / BAD).write_bytes(data[: len(data) // 2])
    return folder


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """BLURCLI_HOME for module-scoped work (the CLI's reference run, Ray's workers)."""
    home = tmp_path_factory.mktemp("ray-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLURCLI_HOME", str(home))
        yield home


@dataclass(frozen=True)
class Reference:
    """The photos, the tiny model, and what the single-process CLI made of them: a folder, JSON lines."""

    photos: Path
    weights: Path
    out: Path
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def cli(
    photos: Path, tiny_weights: Path, module_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Reference:
    """`blurcli blur PHOTOS -o OUT -w tiny --json` in this process."""
    out = tmp_path_factory.mktemp("cli") / "out"
    result = runner.invoke(app, ["blur", str(photos), "-o", str(out), "-w", str(tiny_weights), "--json"])
    assert result.exit_code == 1, result.output  # the cut JPEG
    return Reference(photos, tiny_weights, out, [json.loads(line) for line in result.stdout.splitlines()])


@pytest.fixture(scope="module")
def cluster(module_home: Path) -> Iterator[Any]:
    """A local Ray cluster of 2 CPUs for the module; its workers keep to the test's data dir."""
    ray = pytest.importorskip("ray")
    env = {"BLURCLI_HOME": str(module_home)}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _outcomes(records: list[dict[str, Any]]) -> dict[str, tuple[str, str | None, str | None]]:
    """input -> (status, output's name, error), for comparing runs that write to other folders."""
    return {r["input"]: (r["status"], r["output"] and Path(r["output"]).name, r["error"]) for r in records}


def _as_dicts(results: list[FileResult]) -> list[dict[str, Any]]:
    return [json.loads(result.to_json()) for result in results]


def test_ray_writes_the_clis_outputs_and_a_bad_file_is_one_failed_record(
    cluster: Any, cli: Reference, tmp_path: Path
) -> None:
    results = process_with_ray([cli.photos], tmp_path, weights=str(cli.weights), cluster=RayOptions(rows=2))
    assert _files(tmp_path) == _files(cli.out)
    assert len(_files(tmp_path)) == 4
    assert _outcomes(_as_dicts(results)) == _outcomes(cli.records)
    bad = cli.photos / BAD
    failed = [(r.input, r.error) for r in results if r.status == "failed"]
    assert failed == [(str(bad), f"{bad}: truncated JPEG (no end-of-image marker)")]
    assert sum(r.status == "done" for r in results) == 4


def test_a_rerun_on_ray_skips_the_outputs_that_exist(cluster: Any, cli: Reference) -> None:
    before = _files(cli.out)
    results = process_with_ray([cli.photos], cli.out, weights=str(cli.weights), cluster=RayOptions(workers=1))
    skipped = sorted((r.status, r.reason) for r in results if r.input != str(cli.photos / BAD))
    assert skipped == [("skipped", EXISTS)] * 4
    assert _files(cli.out) == before


def test_process_photos_blurs_what_rays_reader_read(cluster: Any, cli: Reference, tmp_path: Path) -> None:
    read = cluster.data.read_binary_files(
        str(cli.photos), include_paths=True, file_extensions=PHOTO_EXTENSIONS
    )
    settings = {"weights": str(cli.weights), "output": str(tmp_path), "root": str(cli.photos)}
    pool = cluster.data.ActorPoolStrategy(size=1)  # one worker (one CPU): the reader keeps the other
    records = read.map_batches(ProcessPhotos, fn_constructor_kwargs=settings, batch_size=2, compute=pool)
    rows = _as_dicts([FileResult(**row) for row in records.take_all()])
    assert _files(tmp_path) == _files(cli.out)
    assert _outcomes(rows) == _outcomes(cli.records)


def test_blur_ray_on_the_command_line_prints_the_clis_json_lines(
    cluster: Any, cli: Reference, tmp_path: Path
) -> None:
    args = ["blur", str(cli.photos), "-o", str(tmp_path), "-w", str(cli.weights), "--json", "--ray", "auto"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [sorted(line) for line in lines] == [sorted(line) for line in cli.records]
    assert _outcomes(lines) == _outcomes(cli.records)
    assert _files(tmp_path) == _files(cli.out)
    assert f"error: {cli.photos / BAD}: truncated JPEG" in result.stderr
    assert "4 done, 0 skipped, 1 failed" in result.stderr


def test_a_worker_turns_a_batch_of_rows_into_one_record_each(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")  # the records' format, installed with ray[data]
    worker = ProcessPhotos(BlurTask(), model_bytes(tiny_weights)[0], "cpu", output=tmp_path / "out")
    good = encode_image(_photo(0), ".png")
    own = add_output_mark(good, "blurred")
    paths = np.array(["in/good.png", "in/bad.jpg", "in/own.png"])
    table = worker({"path": paths, "bytes": np.array([good, b"not a photo", own], dtype=object)})
    records = {row["input"]: row for row in table.to_pylist()}
    assert records["in/good.png"]["status"] == "done"
    assert (tmp_path / "out" / "good_blurred.png").is_file()
    assert records["in/bad.jpg"]["status"] == "failed" and records["in/bad.jpg"]["error"].startswith(
        "in/bad.jpg: "
    )
    assert records["in/own.png"]["status"] == "skipped"
    assert "blurcli's own output" in records["in/own.png"]["reason"]
    assert table.column_names == list(FileResult.__dataclass_fields__)


def test_a_row_that_cannot_be_planned_is_a_failed_record(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    worker = ProcessPhotos(PredictTask(), model_bytes(tiny_weights)[0], "cpu", output=tmp_path)
    photo = tmp_path / "a.png"  # predict names masks <stem>.png in the output folder: this very file
    table = worker(
        {"path": np.array([str(photo)]), "bytes": np.array([encode_image(_photo(0), ".png")], object)}
    )
    [record] = table.to_pylist()
    assert record["status"] == "failed"
    assert (
        record["error"]
        == f"{photo}: refusing to overwrite an input file; it is not blurcli's output: rename it or give -o"
    )


def test_stdin_and_stdout_are_refused_on_ray() -> None:
    with pytest.raises(UsageError, match="no stdin or stdout"):
        run_jobs_on_ray([Job(None, None)], BlurTask())


def test_without_ray_the_entry_points_say_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, photos: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as where it is not installed
    with pytest.raises(BlurcliError, match=r'pip install "blurcli\[ray\]"'):
        import_ray()
    result = runner.invoke(
        app,
        [
            "blur",
            str(photos / "a.jpg"),
            "-o",
            str(tmp_path / "x.jpg"),
            "-w",
            str(tiny_weights),
            "--ray",
            "local",
        ],
    )
    assert result.exit_code == 1
    assert 'pip install "blurcli[ray]"' in result.stderr


def test_the_cli_imports_no_ray() -> None:
    code = "import sys, blurcli.cli; print([m for m in sys.modules if m == 'ray' or m.endswith('ray_data')])"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"
