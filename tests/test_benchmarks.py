"""Smoke tests: every benchmark and figure script runs, as a user runs it, on a tiny input.

Each script runs in a fresh process from the repository root with a tiny untrained model, a tiny
synthetic LFW Part Labels release and small images, writing only under tmp_path; the test checks
that it exits 0 and prints its tables in their format (or writes its picture). It checks no figure:
the numbers come from an untrained model on toy data, a target a script reports may read "met" or
"not met", and nothing here says the README's figures are still what the scripts measure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.ccp_fake import make_ccp_dataset
from tests.lfw_fake import make_lfw_dataset

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"-?\d+(?:\.\d+)?"


@pytest.fixture(scope="module")
def tiny_lfw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five test faces: enough for bench_heads' timing, which pastes up to five into one photo."""
    return make_lfw_dataset(tmp_path_factory.mktemp("lfw"), counts={"train": 1, "validation": 1, "test": 5})


def run_script(script: str, *args: object, tmp_path: Path, timeout: float = 120) -> str:
    """Run `python benchmarks/<script> ARGS` from the repository root; its stdout (asserts exit 0)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # a script's own scratch folders go under tmp_path too
    done = subprocess.run(
        [sys.executable, str(Path("benchmarks") / script), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def table_rows(output: str, first: str) -> list[list[str]]:
    """The cells of each markdown table row whose first cell is `first`."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in output.splitlines()]
    return [row for row in rows if row[0] == first]


def test_bench_batch(tiny_weights: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_batch.py",
        *("--images", 2, "--large", 0, "--width", 192, "--height", 108, "--jobs", 1, "--skip-50mp"),
        *("--weights", tiny_weights),
        tmp_path=tmp_path,
    )
    assert "2 JPEGs (0 of 12 MP, the rest 192x108), quality 95, 1 threads, --heads auto" in output
    assert re.search(rf"\(a\) decode \+ encode floor: +{NUMBER} images/s", output)
    assert re.search(rf"ratio b/a: {NUMBER} \(whole command\), {NUMBER} \(batch only\)", output)
    assert "peak RSS" not in output


def test_bench_compose(tmp_path: Path) -> None:
    output = run_script(
        "bench_compose.py",
        *("--width", 400, "--height", 300, "--repeat", 1, "--strengths", 0.012),
        tmp_path=tmp_path,
    )
    assert "0.12 MP photo (400x300)" in output
    rows = [line.split() for line in output.splitlines() if line.strip().startswith("0.012")]
    assert [row[3] for row in rows] == ["gaussian", "disc"]
    assert all(float(row[-1]) > 40 for row in rows)  # background PSNR against the full-resolution blur


def test_bench_framing(tiny_weights: Path, tiny_lfw: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_framing.py",
        *("--images", 5, "--weights", tiny_weights, "--data", tiny_lfw),
        tmp_path=tmp_path,
    )
    assert "5 LFW test images" in output
    [row] = table_rows(output, str(tiny_weights))
    assert len(row) == 5
    assert all(re.fullmatch(rf"{NUMBER} \({NUMBER}\)", cell) for cell in row[1:])  # IoU (recall)


def test_bench_heads(tiny_weights: Path, tiny_lfw: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_heads.py",
        *("--frames", 1, "--weights", tiny_weights, "--data", tiny_lfw),
        tmp_path=tmp_path,
    )
    for scale in ("1/3", "1/6", "1/12"):
        [row] = table_rows(output, scale)
        assert all(re.fullmatch(rf"{NUMBER} / {NUMBER}", cell) for cell in row[2:])  # IoU / boundary F
    assert [row[0] for row in table_rows(output, "5")] == ["5"]  # the timing table's 5-head row
    assert re.search(rf"extra per head beyond the first \(5 vs 1\): {NUMBER} ms", output)


def test_bench_heads_person(person_weights: Path, tiny_ccp: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_heads.py",
        *("--subject", "person", "--frames", 1, "--limit", 3, "--threads", 1),
        *("--weights", person_weights, "--data", tiny_ccp),
        tmp_path=tmp_path,
    )
    assert "CCP test people in 1920x1080 frames, 1 frames per size" in output
    assert "1 threads" in output
    for size in ("1/1.2", "1/2", "1/4", "1/8", "1/16"):
        [row] = table_rows(output, size)
        assert all(re.fullmatch(rf"{NUMBER} / {NUMBER}", cell) for cell in row[2:5])  # IoU / boundary F
        assert all(re.fullmatch(NUMBER, cell) for cell in row[1:2] + row[5:])  # people, ms single / auto


def test_bench_ray(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    # Ray's sockets live under its temp dir, TMPDIR's by default: tmp_path is too deep for a socket name.
    monkeypatch.setenv("RAY_TMPDIR", tempfile.gettempdir())
    output = run_script(
        "bench_ray.py",
        *("--images", 3, "--width", 96, "--height", 64, "--jobs", 1, "--weights", tiny_weights),
        tmp_path=tmp_path,
    )
    assert "3 JPEGs of 96x64" in output
    assert re.search(rf"local Ray cluster started in {NUMBER} s", output)
    cli = rf"^\| CLI engine, 1 process \(\+{NUMBER} s model load\) \| {NUMBER} \| {NUMBER} \| - \| - \|$"
    assert re.search(cli, output, re.M)
    for workers in ("1 worker", "2 workers"):
        [row] = table_rows(output, f"Ray Data, {workers}")
        assert all(re.fullmatch(NUMBER, cell) for cell in row[1:4])
        assert row[4] == "yes"  # the same bytes as the CLI's engine


def test_bench_refine(tiny_weights: Path, tiny_lfw: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_refine.py",
        *("--limit", 5, "--scales", 1, 2, "--weights", tiny_weights, "--data", tiny_lfw),
        tmp_path=tmp_path,
    )
    assert "LFW test: 5 images" in output
    for scale in ("1x", "2x"):
        for upsampling in ("bilinear", "guided"):
            assert re.search(rf"{scale} +{upsampling} +{NUMBER} +{NUMBER} +{NUMBER}", output)


def test_bench_robustness(tiny_weights: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "masks.png"
    output = run_script("bench_robustness.py", "--weights", tiny_weights, "--sheet", sheet, tmp_path=tmp_path)
    rows = table_rows(output, "original") + table_rows(output, "grey")
    assert len(rows) == 2
    assert all(re.fullmatch(NUMBER, cell) for row in rows for cell in row[1:])  # face, hair, corners
    assert cv2.imread(str(sheet)).shape == (2 * 192, 7 * 192, 3)  # 14 variants, 7 to a row


def test_bench_serve(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason='the serve extra: pip install "blurcli[serve]"')
    output = run_script(
        "bench_serve.py",
        *("--images", 4, "--width", 96, "--height", 64, "--rounds", 2, "--clients", 8),
        *("--workers", 2, "--jobs", 1, "--weights", tiny_weights),
        tmp_path=tmp_path,
    )
    header = "4 JPEGs of 96x64, quality 95, on 127.0.0.1: blurcli serve --workers 2, blurcli blur -j 1,"
    assert header in output
    [blur] = table_rows(output, "blurcli blur (batch, same run)")
    [serve] = table_rows(output, "blurcli serve, 8 clients")
    assert blur[1:4] == ["4", "0", "-"] and serve[1:4] == ["8", "0", "0"]  # requests, failed, lost
    assert all(re.fullmatch(NUMBER, cell) for cell in blur[4:] + serve[4:])  # seconds, photos/s, ratio
    assert re.search(rf"latency \(ms\): p50 {NUMBER}, p90 {NUMBER}, p99 {NUMBER}, max {NUMBER}", output)
    if sys.platform == "linux":
        peak = rf"peak RSS: blurcli serve {NUMBER} MB after the warm-up, {NUMBER} MB after the load; "
        assert re.search(peak + rf"blurcli blur {NUMBER} MB", output)
    assert "server stopped by SIGTERM: exit 0" in output


def test_bench_segment(tiny_weights: Path, tiny_lfw: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_segment.py",
        *("--weights", tiny_weights, "--runs", 5, "--images", 3, "--data", tiny_lfw, "--ablation"),
        tmp_path=tmp_path,
    )
    assert "tiny.pt" in output and "3 images of 250x250, 5 runs" in output
    assert re.search(rf"threads 1: blurcli {NUMBER} ms/img", output)
    assert re.search(rf"in torch \(as training runs it\) {NUMBER} ms/img", output)
    assert re.search(rf"in torch, without channels-last, BN not folded {NUMBER} ms/img", output)
    if importlib.util.find_spec("mediapipe") is None:
        assert "(mediapipe==0.10.14 not installed: no comparison)" in output
    else:
        assert re.search(rf"ratio blurcli/mediapipe {NUMBER}", output)


def test_bench_stages(tiny_weights: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_stages.py",
        *("--width", 192, "--height", 108, "--repeat", 1, "--batch", 2, "--weights", tiny_weights),
        tmp_path=tmp_path,
    )
    assert re.search(r"\| model pass \(batch of 2, per photo\) \| [\d.]+ \| blurcli \|", output)
    assert re.search(rf"at best a ratio of {NUMBER}", output)


def test_figure_compose(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "naive_vs_ours.jpg"
    output = run_script("figures/compose.py", "--weights", tiny_weights, "--out", out, tmp_path=tmp_path)
    assert f"wrote {out}" in output
    assert cv2.imread(str(out)).shape[1] == 2 * 512 + 8  # two panels of the example and the gap


def test_figure_heads(tiny_weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "group_heads.jpg"
    output = run_script("figures/heads.py", "--weights", tiny_weights, "--out", out, tmp_path=tmp_path)
    assert f"wrote {out}" in output
    assert cv2.imread(str(out)).shape[:2] == (round(0.6 * (3 * 700 + 2 * 8)), round(0.6 * 1500))


@pytest.fixture(scope="module")
def tiny_ccp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three CCP test photos (0901-0903), in the release's folders."""
    return make_ccp_dataset(tmp_path_factory.mktemp("ccp"), numbers=range(901, 904))


def test_bench_person(person_weights: Path, tiny_ccp: Path, tmp_path: Path) -> None:
    people = tmp_path / "people"
    for folder in ("images", "masks"):
        (people / folder).mkdir(parents=True)
    for index in range(2):
        cv2.imwrite(str(people / "images" / f"web_{index}.jpg"), np.full((40, 30, 3), 90 + index, np.uint8))
        mask = np.zeros((40, 30), np.uint8)
        mask[5:35, 5 : 20 + index] = 255  # a close-up: over 30 % of the frame
        cv2.imwrite(str(people / "masks" / f"web_{index}.png"), mask)
    output = run_script(
        "bench_person.py",
        *("--limit", 2, "--weights", person_weights, "--ccp", tiny_ccp, "--people", people, "--threads", 1),
        tmp_path=tmp_path,
    )
    assert "people-dev: 2 photos (2 close-ups)" in output
    assert "CCP test: 2 photos (0 close-ups)" in output
    header = "| method | person IoU | boundary F (3 px) | pixel accuracy | close-ups: IoU | ms per photo |"
    assert output.count(header) == 2
    assert "in ONNX Runtime" in output and "1 threads (ONNX Runtime, OpenCV)" in output
    people_row, ccp_row = table_rows(output, "blurcli")
    assert all(re.fullmatch(NUMBER, cell.removesuffix(" %")) for cell in people_row[1:])
    assert all(re.fullmatch(NUMBER, cell.removesuffix(" %")) for cell in ccp_row[1:4] + ccp_row[5:])
    assert ccp_row[4] == "nan"  # no close-up among CCP's photos
    assert re.search(r"target person IoU >= 0.9: (not )?met", output)
    assert re.search(r"target person IoU >= 0.92: (not )?met", output)
    if importlib.util.find_spec("mediapipe") is None:
        assert "mediapipe not installed: no comparison" in output


def test_bench_startup(tmp_path: Path) -> None:
    output = run_script("bench_startup.py", "--runs", 1, tmp_path=tmp_path)
    assert re.search(rf"blurcli blur \(ONNX Runtime\): +{NUMBER} s", output)
    if importlib.util.find_spec("mediapipe") is None:
        assert "(mediapipe not installed: no comparison" in output


def test_bench_video(tmp_path: Path) -> None:
    pytest.importorskip("av")
    output = run_script(
        "bench_video.py",
        "--frames",
        4,
        "--sizes",
        "128x72",
        "--quality-size",
        "128x72",
        "--crowd-size",
        "256x144",
        tmp_path=tmp_path,
    )
    assert re.search(rf"\| pan \| steadied \| {NUMBER} \| {NUMBER} \|", output)
    assert re.search(
        rf"\| second look, followed \(wide every 15\) \| {NUMBER} \| {NUMBER} \| {NUMBER} \|", output
    )
    assert re.search(rf"128x72 crowd: blurcli {NUMBER} fps", output)
    assert re.search(rf"128x72 walk: blurcli {NUMBER} fps, decode \+ encode floor {NUMBER} fps", output)


def test_figure_video(tiny_weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("av")
    output = run_script(
        "figures/video.py", "--weights", tiny_weights, "--out", tmp_path / "v.jpg", tmp_path=tmp_path
    )
    assert "wrote" in output and cv2.imread(str(tmp_path / "v.jpg")).shape == (360, 1288, 3)


def test_bench_memory(tmp_path: Path) -> None:
    output = run_script("bench_memory.py", "--photos", 3, "--megapixels", 0.5, tmp_path=tmp_path)
    assert "3 photos of" in output and "(16-bit RGBA PNG)" in output
    rows = {
        row[0]: row for row in (table_rows(output, name)[0] for name in ("(a) one tiny photo", "(b) budget"))
    }
    assert re.fullmatch(NUMBER, rows["(b) budget"][1]) and re.fullmatch(NUMBER, rows["(b) budget"][3])
    assert re.search(
        r"photos' share with the budget: (under|over) it; \(b\)/\(c\) peak RSS \d+\.\d\d", output
    )


def test_bench_vs_peers(tiny_lfw: Path, tmp_path: Path) -> None:
    output = run_script(
        "bench_vs_peers.py",
        "--data",
        tiny_lfw,
        "--photos",
        2,
        "--frames",
        6,
        "--runs",
        1,
        tmp_path=tmp_path,
        timeout=300,
    )
    for path in (
        "predict, LFW test",
        "blur, 1080p JPEGs",
        "blur, 720p clip, --heads auto",
        "one photo, cold process",
    ):
        (row,) = table_rows(output, path)
        assert re.match(NUMBER, row[1]), row
