"""Videos: every frame blurred with its timestamp, audio copied packet for packet, masks steadied
over time, bad files one line, interruption leaves nothing behind. Clips are made here with PyAV."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from blurcli.cli import app
from blurcli.photo import write_image
from blurcli.render import BlurTask, PredictTask
from blurcli.segment import new_segmenter
from blurcli.steady import Steadier, steady_mask
from blurcli.video import process_video
from tests.test_follow import OPTIONS, Bright, frame, person_segmenter

av = pytest.importorskip("av")
runner = CliRunner()


def make_clip(
    path: Path,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    rate: int = 24,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    picture: Callable[[int], np.ndarray] | None = None,
    stamps: list[int] | None = None,
    codec: str = "libx264",
    audio_codec: str | None = "aac",
) -> Path:
    """A clip of a bright square moving over a gradient (or of `picture(index)`), in `codec`, with
    one second of a 440 Hz sine in `audio_codec` (AAC; 16-bit samples for PCM; None: no sound);
    frame i at `stamps[i]` (in 1/`rate` s) for a variable frame rate."""
    width, height = size
    with av.open(str(path), "w") as out:
        out.metadata["title"] = "a talk"
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        audio = None if audio_codec is None else out.add_stream(audio_codec, rate=16000)
        if audio is not None:
            audio.layout = "mono"
        ramp = np.linspace(0, 160, width, dtype=np.float32)[None, :, None]
        for index in range(frames):
            image = np.broadcast_to(ramp, (height, width, 3)).astype(np.uint8).copy()
            left = 4 + 2 * index
            image[12:36, left : left + 16] = (230, 200, 180)
            if picture is not None:
                image = picture(index)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index if stamps is None else stamps[index]
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is None:
            return path
        wave = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
        pcm = audio_codec.startswith("pcm_s16")
        samples = (wave * 32767).astype(np.int16)[None] if pcm else wave.astype(np.float32)[None]
        sound = av.AudioFrame.from_ndarray(samples, format="s16" if pcm else "fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        for packet in [*audio.encode(sound), *audio.encode()]:
            out.mux(packet)
    return path


def describe(path: Path) -> dict[str, object]:
    """Frame count, rate, frame timestamps, duration and the audio packets' timestamps and bytes."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        rate, duration = video.average_rate, container.duration
        audio = [(p.pts, bytes(p)) for p in container.demux(container.streams.audio[0]) if p.dts is not None]
    with av.open(str(path)) as container:
        stamps = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
    return {"frames": len(stamps), "rate": rate, "stamps": stamps, "duration": duration, "audio": audio}


def test_a_clip_keeps_its_frames_timing_and_sound(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "talk.mp4")
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert (line["status"], line["frames"], line["fps"]) == ("done", 12, 24.0)
    before, after = describe(clip), describe(tmp_path / "talk_blurred.mp4")
    assert after["frames"] == before["frames"] == 12 and after["rate"] == before["rate"]
    assert after["stamps"] == pytest.approx(before["stamps"], abs=1e-3)
    assert after["duration"] == pytest.approx(before["duration"], rel=0.05)
    assert after["audio"] == before["audio"] and before["audio"]  # copied, not re-encoded
    with av.open(str(tmp_path / "talk_blurred.mp4")) as container:
        assert container.metadata.get("title") == "a talk"


def test_a_folder_of_photos_and_videos(tmp_path: Path, tiny_weights: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mp4")
    write_image(folder / "photo.png", np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8))
    result = runner.invoke(
        app, ["blur", str(folder), "-o", str(tmp_path / "out"), "-w", str(tiny_weights), "--json"]
    )
    assert result.exit_code == 0, result.output
    lines = {Path(json.loads(x)["input"]).name: json.loads(x) for x in result.stdout.splitlines()}
    assert lines["clip.mp4"]["frames"] == 12 and "frames" not in lines["photo.png"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip_blurred.mp4", "photo_blurred.png"]
    again = runner.invoke(app, ["blur", str(folder), "-w", str(tiny_weights)])  # beside the inputs
    rerun = runner.invoke(app, ["blur", str(folder), "-w", str(tiny_weights)])
    assert again.exit_code == 0 and rerun.exit_code == 0
    assert not list(folder.glob("*_blurred_blurred*"))


def test_a_damaged_video_is_one_line_and_exit_1(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4")
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[:300])
    (tmp_path / "text.mp4").write_text("not a video")
    for name in ("cut.mp4", "text.mp4"):
        result = runner.invoke(app, ["blur", str(tmp_path / name), "-w", str(tiny_weights)])
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and name in result.stderr
        assert not [p for p in tmp_path.iterdir() if "_blurred" in p.name or p.name.endswith(".part")]


def test_an_interrupted_video_leaves_nothing(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=24)
    segmenter = new_segmenter(str(tiny_weights), "cpu")
    seen = []

    def render(photo: object, mask: object) -> object:
        seen.append(1)
        if len(seen) == 10:
            raise KeyboardInterrupt
        return BlurTask()(photo, mask)  # type: ignore[arg-type]

    with pytest.raises(KeyboardInterrupt):
        process_video(clip, tmp_path / "out" / "a_blurred.mp4", segmenter, render)  # type: ignore[arg-type]
    assert list((tmp_path / "out").iterdir()) == []


def test_a_killed_runs_temp_video_is_removed_by_the_next_run(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "talk.mp4")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    stale = tmp_path / f".talk_blurred.mp4.{int(dead.stdout)}.0123abcd.part"
    stale.write_bytes(b"half a video")
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "-q"])
    assert result.exit_code == 0, result.output
    assert not stale.exists() and (tmp_path / "talk_blurred.mp4").is_file()


def test_predict_writes_a_mask_video(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4")
    result = runner.invoke(app, ["predict", str(clip), "-w", str(tiny_weights)])
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "a_mask.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 12
    spread = max(float(np.abs(f[..., 0].astype(int) - f[..., 2]).max()) for f in frames)
    assert spread <= 12  # grey (up to the codec's chroma rounding)


def test_steadying_halves_flicker_on_still_edges_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((24, 32), np.float32)
    truth[6:18, 8:20] = 1.0
    grey = np.full((24, 32), 0.5, np.float32)
    previous, raw, steadied = None, [], []
    for _ in range(30):
        low = np.clip(truth + rng.normal(0, 0.15, truth.shape), 0, 1).astype(np.float32)
        out = steady_mask(low, grey, previous, 0.6)
        previous = (out, grey)
        raw.append(low)
        steadied.append(out)
    flicker = [np.mean(np.abs(np.diff(np.stack(masks), axis=0))) for masks in (raw, steadied)]
    assert flicker[1] < 0.5 * flicker[0]
    moved = grey.copy()
    moved[6:18, 8:20] = 0.9  # the picture changed here: the new mask wins
    new = np.zeros_like(truth)
    out = steady_mask(new, moved, previous, 0.6)
    assert float(out[6:18, 8:20].max()) < 0.05 and float(out[0:4].max()) < 0.2


def test_steadying_follows_a_moving_subject_along_the_flow() -> None:
    """A textured picture and its subject moving 4 px a frame: the steadied mask moves with them
    (no lag) and changes less, seen from the subject, than the noisy per-frame masks."""
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (96, 256), np.uint8), (0, 0), 2)
    truth = np.zeros((96, 256), np.float32)
    truth[30:70, 40:90] = 1.0
    steadier, raw, steadied = Steadier(0.75), [], []
    for index in range(20):
        picture = np.roll(texture, 4 * index, axis=1)
        moved = np.roll(truth, 4 * index, axis=1)
        low = np.clip(moved + rng.normal(0, 0.15, moved.shape), 0, 1).astype(np.float32)
        raw.append(np.roll(low, -4 * index, axis=1))  # seen from the subject
        steadied.append(np.roll(steadier(low, picture), -4 * index, axis=1))
    change = [np.mean(np.abs(np.diff(np.stack(m)[5:, 25:75, 30:110], axis=0))) for m in (raw, steadied)]
    assert change[1] < 0.5 * change[0]
    for mask in steadied[5:]:  # no lag: the subject's edges where they are, not behind them
        inside = mask > 0.5
        assert (inside == (truth > 0.5)).mean() > 0.995
        columns = np.nonzero(inside[50])[0]
        assert abs(columns.min() - 40) <= 1 and abs(columns.max() - 89) <= 1


def test_ten_bit_video_is_refused_not_squeezed(tmp_path: Path, tiny_weights: Path) -> None:
    try:
        clip = make_clip(tmp_path / "hdr.mkv", frames=3, pix_fmt="yuv420p10le")
    except (av.FFmpegError, ValueError):
        pytest.skip("this x264 has no 10-bit encoder")
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights)])
    assert result.exit_code == 1 and "yuv420p10le" in result.stderr and "not supported" in result.stderr


def test_a_phone_videos_rotation_is_kept(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "phone.mp4", rotation=-90)
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights)])
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "phone_blurred.mp4")) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 12 and frames[0].rotation == -90
    assert (frames[0].width, frames[0].height) == (64, 48)  # stored as the input stores it


def test_the_model_sees_a_phone_video_upright(tmp_path: Path) -> None:
    """A display rotation of -90 (an iPhone held upright) turns the stored frame clockwise, as
    FFmpeg's players do: its top-left corner is shown top-right, and so the model sees it."""
    seen = []

    class Recording(Bright):
        def __call__(self, batch: np.ndarray) -> np.ndarray:
            seen.extend(batch)
            return super().__call__(batch)

    segmenter, _ = person_segmenter(Recording())
    corner = np.zeros((48, 64, 3), np.uint8)
    corner[:12, :16] = 255  # the stored frame's top-left corner
    clip = make_clip(tmp_path / "phone.mp4", rotation=-90, picture=lambda i: corner)
    process_video(clip, tmp_path / "out.mp4", segmenter, PredictTask())
    upright = seen[0].mean(axis=0)
    assert upright.shape[0] > upright.shape[1]  # portrait
    rows, cols = upright.shape
    assert upright[: rows // 4, -cols // 4 :].mean() > 0.8 and upright[rows // 2 :].mean() < 0.2


def test_the_second_look_follows_people_through_a_clip(tmp_path: Path) -> None:
    segmenter, network = person_segmenter()
    clip = make_clip(tmp_path / "walk.mp4", frames=20, size=(320, 180), picture=lambda i: frame(40 + 4 * i))
    result = process_video(clip, tmp_path / "out.mp4", segmenter, PredictTask(), heads=OPTIONS)
    assert result.frames == 20
    assert network.wide_looks == 2  # frames 0 and 15, not 20
    with av.open(str(tmp_path / "out.mp4")) as container:
        masks = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    for index, mask in enumerate(masks):  # the person, wherever it walked, and nothing else
        truth = frame(40 + 4 * index)[..., 0] > 128
        assert ((mask > 128) == truth).mean() > 0.97


def test_a_variable_frame_rate_keeps_every_timestamp(tmp_path: Path, tiny_weights: Path) -> None:
    stamps = [0, 1, 2, 5, 6, 10, 11, 12, 20, 21, 22, 30]  # a phone's: frames held, frames dropped
    clip = make_clip(tmp_path / "vfr.mp4", stamps=stamps)
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "-q"])
    assert result.exit_code == 0, result.output
    before, after = describe(clip), describe(tmp_path / "vfr_blurred.mp4")
    assert before["stamps"] == pytest.approx([s / 24 for s in stamps], abs=1e-3)
    assert after["stamps"] == pytest.approx(before["stamps"], abs=1e-3)
    assert after["audio"] == before["audio"]


def test_max_pixels_applies_to_a_videos_frames(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=2, size=(64, 48))
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "--max-pixels", "3000"])
    assert result.exit_code == 1
    assert "a.mp4: 64x48 is 3,072 pixels, over the limit of 3,000 pixels" in result.stderr
    assert not (tmp_path / "a_blurred.mp4").exists()


def test_save_mask_on_a_video_is_refused_up_front(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=2)
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "--save-mask"])
    assert result.exit_code == 2
    assert "a.mp4 is a video, which gets no mask file yet" in result.stderr
    assert not (tmp_path / "a_blurred.mp4").exists()


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ("out.png", "a.mp4 is a video; give a video name"),
        ("-", "a.mp4 is a video, which cannot go to stdout"),
        ("out.heic", "blurcli reads .heic photos but does not write them"),
    ],
)
def test_a_named_output_must_fit_the_video(
    tmp_path: Path, tiny_weights: Path, output: str, says: str
) -> None:
    clip = make_clip(tmp_path / "a.mp4", frames=2)
    result = runner.invoke(
        app,
        ["blur", str(clip), "-w", str(tiny_weights), "-o", str(tmp_path / output) if output != "-" else "-"],
    )
    assert result.exit_code == 2
    assert says in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


def test_a_photo_cannot_be_named_into_a_video_file(tmp_path: Path, tiny_weights: Path) -> None:
    write_image(tmp_path / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(
        app, ["blur", str(tmp_path / "a.jpg"), "-w", str(tiny_weights), "-o", str(tmp_path / "o.mp4")]
    )
    assert result.exit_code == 2
    assert "a.jpg is a photo; give an image name" in result.stderr


def test_odd_frame_sizes_get_one_more_pixel_instead_of_failing(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "odd.mkv", 4, (33, 25), pix_fmt="yuvj420p", codec="mjpeg", audio_codec=None)
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights)])
    assert result.exit_code == 0, result.output
    with av.open(str(tmp_path / "odd_blurred.mkv")) as blurred:
        stream = blurred.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (34, 26)
        assert sum(1 for _ in blurred.decode(stream)) == 4


def test_audio_the_output_cannot_hold_is_blamed_on_the_output(tmp_path: Path, tiny_weights: Path) -> None:
    clip = make_clip(tmp_path / "pcm.mov", 4, audio_codec="pcm_s16le")
    result = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights), "-o", str(tmp_path / "out.mp4")])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "out.mp4: MP4 cannot hold the input's pcm_s16le audio" in line and "damaged" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcm.mov"]
    kept = runner.invoke(app, ["blur", str(clip), "-w", str(tiny_weights)])  # a .mov holds it
    assert kept.exit_code == 0, kept.output
