"""Blur the background of a recording: frames through the model in batches, masks steadied over
time, the compositor per frame, H.264 out; audio packets copied untouched.

PyAV (FFmpeg's libraries in its wheels) is optional (`pip install "blurcli[video]"`) and imported
only when a video arrives. Frames keep their timestamps (variable frame rate too) and the stream's
time base; 10-bit and other pixel formats H.264's 8-bit profiles cannot hold are refused, never
squeezed silently. The output is written to a temp file and renamed, like photos.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from blurcli.background import Ahead, Writer
from blurcli.errors import BlurcliError, UsageError, first_line
from blurcli.follow import Follower
from blurcli.limits import DEFAULT_MAX_PIXELS, check_pixels
from blurcli.paths import temp_path
from blurcli.pixels import Photo
from blurcli.render import Mask, Rendered
from blurcli.second_look import HeadOptions
from blurcli.segment import Segmenter
from blurcli.steady import Steadier

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# Containers blurcli writes H.264 into; WebM and AVI inputs come out as MP4.
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_8BIT_YUV = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")
_INSTALL = 'pip install "blurcli[video]"'


@dataclass(frozen=True)
class VideoOptions:
    """How frames are steadied and encoded: `steady` is how much of the previous frame's refined
    mask a still pixel keeps (0: every frame alone); `crf` and `preset` are x264's quality and speed."""

    steady: float = 0.75
    crf: int = 20
    preset: str = "veryfast"
    batch_size: int = 8
    wide_every: int = 15  # frames between the second look's wide looks (and on every scene cut)


@dataclass(frozen=True)
class VideoResult:
    """What was written: frames and their average rate."""

    frames: int
    fps: float


PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def check_preset(preset: str) -> str:
    """--preset's value, one of x264's; anything else is a usage error."""
    if preset not in PRESETS:
        raise UsageError(f"--preset {preset}: not an x264 preset (use one of {', '.join(PRESETS)})")
    return preset


def is_video(path: Path | str) -> bool:
    """Whether a name is a video blurcli reads, by its extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_output_extension(ext: str) -> str:
    """The container a video's output gets: its own where H.264 fits, else MP4."""
    return ext if ext.lower() in _CONTAINERS else ".mp4"


def process_video(
    source: Path,
    target: Path,
    segmenter: Segmenter,
    render: Callable[[Photo, Mask], Rendered],
    options: VideoOptions = VideoOptions(),
    subject_only: bool = True,
    heads: HeadOptions | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> VideoResult:
    """Read `source`, render every frame with its steadied mask, write `target` atomically (H.264
    in the target's container, audio copied). With `heads`, the second look at people not framed
    like a portrait, its wide look on cuts and every few frames (`follow`). Frames of more than
    `max_pixels` are refused before any is decoded. Errors are one line naming `source`."""
    av = _import_av(source)
    tmp = temp_path(target)
    try:
        container = av.open(str(source))
    except (av.FFmpegError, OSError, ValueError) as error:
        raise BlurcliError(f"{source}: not a video blurcli can read ({first_line(error)})") from None
    try:
        if not container.streams.video:
            raise BlurcliError(f"{source}: no video stream")
        context = container.streams.video[0].codec_context
        check_pixels(context.width, context.height, str(source), max_pixels)
        kind = _CONTAINERS[video_output_extension(target.suffix)]
        _check_audio(container, kind, target)
        with _writing(av, target):
            target.parent.mkdir(parents=True, exist_ok=True)
            output = av.open(str(tmp), "w", format=kind)
        try:
            result = _transcode(
                av, container, output, segmenter, render, options, subject_only, heads, source, target
            )
        finally:
            with _writing(av, target):
                output.close()
        with _writing(av, target):
            os.replace(tmp, target)
        return result
    except av.FFmpegError as error:
        raise BlurcliError(f"{source}: damaged video ({first_line(error)})") from None
    finally:
        container.close()
        tmp.unlink(missing_ok=True)


def _transcode(
    av: Any,
    container: Any,
    output: Any,
    segmenter: Segmenter,
    render: Callable[[Photo, Mask], Rendered],
    options: VideoOptions,
    subject_only: bool,
    heads: HeadOptions | None,
    source: Path,
    target: Path,
) -> VideoResult:
    """Every frame of `container` through the model and `render` into `output` (H.264, the input's
    metadata and display rotation), audio packets muxed as they came."""
    video = container.streams.video[0]
    rate = video.average_rate or video.guessed_rate or 30
    encoder = _add_encoder(output, video, rate, options, source)
    output.metadata.update(container.metadata)  # title, date, location, ...
    encoder.metadata.update(video.metadata)
    rotation = _rotation(container)
    if rotation:
        encoder.set_display_rotation(rotation)  # players turn it as they turned the input
    audio = {stream.index: output.add_stream_from_template(stream) for stream in container.streams.audio}
    steadier = Steadier(options.steady) if subject_only else None
    follower = None if heads is None else Follower(segmenter, subject_only, heads, options.wide_every)
    frames = _Frames(segmenter, render, options.batch_size, subject_only, steadier, follower)
    # The model and the compositor see the picture upright, as players show it; the stored frames
    # keep the input's orientation and its display rotation.
    turns = round(rotation / 90)
    encoding = _Encoding(av, output, encoder, target, turns)
    try:
        with Ahead(_decoded(container, video, audio, turns)) as items:
            count = _pump(items, audio, frames, encoding, options.batch_size)
        encoding.finish()
    finally:
        encoding.close()
    if count == 0:
        raise BlurcliError(f"{source}: no frames could be decoded")
    return VideoResult(count, float(rate))


def _add_encoder(output: Any, video: Any, rate: Any, options: VideoOptions, source: Path) -> Any:
    """The H.264 stream for `video`'s frames: its 8-bit YUV layout, size (made even where chroma is
    subsampled), time base, and x264's quality and speed; other pixel formats are refused."""
    pix_fmt = video.codec_context.pix_fmt or "yuv420p"
    if pix_fmt not in _8BIT_YUV:
        raise BlurcliError(
            f"{source}: {pix_fmt} video (10-bit, HDR or RGB) is not supported yet; 8-bit YUV only"
        )
    encoder = output.add_stream("libx264", rate=rate)
    encoder.pix_fmt = pix_fmt.replace("yuvj", "yuv")
    # x264 needs even sides where chroma is subsampled: an odd side gets one more pixel, its edge
    # repeated, rather than failing (321x241 yuv420p comes out 322x242).
    even_width, even_height = "420" in pix_fmt or "422" in pix_fmt, "420" in pix_fmt
    width, height = video.codec_context.width, video.codec_context.height
    encoder.width, encoder.height = width + (width % 2) * even_width, height + (height % 2) * even_height
    # The codec counts time in the input's units, not in 1/rate: a variable frame rate's stamps
    # would round onto one another (and fail to mux) in frames of the average rate.
    encoder.time_base = encoder.codec_context.time_base = video.time_base
    encoder.options = {"crf": str(options.crf), "preset": options.preset}
    return encoder


def _pump(
    items: Iterator[tuple[Any, np.ndarray | None]],
    audio: dict[int, Any],
    frames: _Frames,
    encoding: _Encoding,
    batch_size: int,
) -> int:
    """The decoded clip into `encoding`: audio packets as they come, video frames rendered in
    batches of `batch_size`. Returns how many frames were written."""
    count = 0
    pending: list[tuple[Any, np.ndarray]] = []
    for item, image in items:
        if image is None:  # an audio packet, muxed as it came
            item.stream = audio[item.stream.index]
            encoding.packet(item)
            continue
        pending.append((item, image))
        if len(pending) >= batch_size:
            count += encoding.frames(frames(pending))
            pending = []
    if pending:
        count += encoding.frames(frames(pending))
    return count


@dataclass(frozen=True)
class _Frames:
    """A batch of upright frames through the model, the second look (`follower`) and `render`,
    with masks steadied over the clip (`steadier`)."""

    segmenter: Segmenter
    render: Callable[[Photo, Mask], Rendered]
    batch_size: int
    subject_only: bool
    steadier: Steadier | None
    follower: Follower | None

    def __call__(self, pending: list[tuple[Any, np.ndarray]]) -> Iterator[tuple[Any, np.ndarray]]:
        """(frame, upright RGB) pairs -> (frame, rendered pixels) pairs, in order."""
        images = [image for _, image in pending]
        prepared = [self.segmenter.prepare(image) for image in images]
        lows = self.segmenter.forward(prepared, self.batch_size, self.subject_only)
        for (frame, image), low in zip(pending, lows, strict=True):
            if self.follower is not None:
                low = self.follower(image, low)
            yield frame, self.render(Photo(image), Mask(low, steady=self.steadier)).photo.pixels


class _Encoding:
    """The output side of a clip: frames encoded and packets muxed on a writer thread, in the order
    given; a failure there is blamed on `target` (see `_writing`)."""

    def __init__(self, av: Any, output: Any, encoder: Any, target: Path, turns: int) -> None:
        self._av, self._output, self._encoder, self._target = av, output, encoder, target
        self._turns = turns
        self._writer = Writer()

    def frames(self, rendered: Iterable[tuple[Any, np.ndarray]]) -> int:
        """Queue rendered frames for encoding, each with its input frame's timestamp; how many."""
        count = 0
        for frame, pixels in rendered:
            stored = _stored(pixels, self._turns, self._encoder.width, self._encoder.height)
            out = self._av.VideoFrame.from_ndarray(stored, format="rgb24")
            out.pts, out.time_base = frame.pts, frame.time_base
            self._writer.put(lambda out=out: self._encode(out))
            count += 1
        return count

    def packet(self, packet: Any) -> None:
        """Queue an audio packet, muxed untouched."""
        self._writer.put(lambda: self._mux(packet))

    def finish(self) -> None:
        """Queue the encoder's last frames."""
        self._writer.put(lambda: self._encode(None))

    def close(self) -> None:
        """Wait for the writer thread; its error, if any, is raised here."""
        self._writer.close()

    def _encode(self, frame: Any) -> None:
        with _writing(self._av, self._target):
            for packet in self._encoder.encode(frame):
                self._output.mux(packet)

    def _mux(self, packet: Any) -> None:
        with _writing(self._av, self._target):
            self._output.mux(packet)


def _stored(pixels: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Rendered upright pixels -> (height, width, 3) as the stream stores them: grey made RGB,
    turned back by `turns` quarter turns, edges repeated to the encoder's even size."""
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    pixels = np.rot90(pixels, -turns)
    extra = (height - pixels.shape[0], width - pixels.shape[1])
    if any(extra):
        pixels = np.pad(pixels, ((0, extra[0]), (0, extra[1]), (0, 0)), mode="edge")
    return np.ascontiguousarray(pixels)


@contextmanager
def _writing(av: Any, target: Path) -> Iterator[None]:
    """Failures while writing `target` (a full disk, a muxer refusing a stream) blamed on it, not
    on the input: the temp file's name and FFmpeg's call are left out."""
    try:
        yield
    except (av.FFmpegError, OSError) as error:
        reason = getattr(error, "strerror", None) or first_line(error)
        raise BlurcliError(f"{target}: cannot write the video ({reason})") from None


def _check_audio(container: Any, kind: str, target: Path) -> None:
    """Audio the output container cannot hold is refused before any frame, naming what would."""
    for stream in container.streams.audio:
        name = stream.codec_context.name
        if kind == "mp4" and name.startswith("pcm_"):
            raise BlurcliError(
                f"{target}: MP4 cannot hold the input's {name} audio, copied untouched; "
                f"write .mov or .mkv (-o {target.with_suffix('.mkv')})"
            )


def _decoded(container: Any, video: Any, audio: dict[int, Any], turns: int) -> Iterator[tuple[Any, Any]]:
    """The clip in demux order: (audio packet, None) for the streams in `audio` (packets with a
    timestamp), and (video frame, its picture as upright RGB) for each decoded frame."""
    for packet in container.demux(video, *container.streams.audio):
        if packet.stream.index in audio:
            if packet.dts is not None:
                yield packet, None
            continue
        for frame in packet.decode():
            yield frame, np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))


def _rotation(container: Any) -> int:
    """The display rotation of the first video frame, in degrees (0 when none); the container is
    rewound for the real pass."""
    try:
        frame = next(container.decode(video=0), None)
        return round(frame.rotation) if frame is not None and frame.rotation else 0
    finally:
        container.seek(0)


def _import_av(source: Path) -> Any:
    try:
        import av
    except ImportError:
        raise BlurcliError(f"{source}: videos need PyAV: {_INSTALL}") from None
    return av
