"""What happens to one photo: its subject mask in, the photo to write out (blurred, or a mask).

Words used here (see docs/architecture.md): a *photo* is a decoded `Photo` (pixels and metadata);
an *image* is plain (H, W, 3) uint8 RGB pixels; *low* is the model's output at model size (the
low-resolution mask); *small* is the photo area-averaged by a whole *factor*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

import cv2
import numpy as np

from blurcli.compose import DEFAULT_FEATHER, DEFAULT_STRENGTH, BlurOptions, Kernel, composite, hidden_factor
from blurcli.errors import BlurcliError, UsageError
from blurcli.pixels import Photo, to_8bit, to_rgb8
from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, grey_guide
from blurcli.resample import shrink, upsample
from blurcli.second_look import HeadOptions, second_look
from blurcli.segment import Segmenter
from blurcli.steady import Steadier

PredictMode = Literal["alpha", "classes", "overlay"]
# A decoded Photo, or bare pixels: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or uint16.
PhotoLike = TypeVar("PhotoLike", Photo, np.ndarray)
# Overlay colours per class (RGB): background untouched, skin green, hair red, as in the LFW masks.
_OVERLAY = np.array([[0, 0, 0], [0, 220, 0], [230, 0, 0]], np.float32)


@dataclass(frozen=True)
class Mask:
    """A photo's subject mask and where it came from, said explicitly, never guessed from its shape.

    `given` False: the model's output at model size, `low`, (h, w) subject probability or
    (h, w, C) class probabilities, to be enlarged along the photo's edges. `given` True: a user's
    (H, W) mask in [0, 1] already at the photo's full resolution, used as it is.
    """

    values: np.ndarray
    given: bool = False
    steady: Steadier | None = None  # a video's: averages the refined mask with the previous frame's


@dataclass(frozen=True)
class Rendered:
    """What a task made of one photo: the photo to write, and the mask it used if asked;
    `unchanged`: the photo is the input as it was (its file can be copied, not re-encoded)."""

    photo: Photo
    mask: Photo | None = None
    unchanged: bool = False


class Task(Protocol):
    """What to make of each photo in a batch (`BlurTask`, `PredictTask`)."""

    mark: str  # the kind of output, written into its metadata so reruns know it (metadata.add_output_mark)

    @property
    def subject_only(self) -> bool:
        """Whether the task needs only subject probability (h, w), not every class's (h, w, C)."""
        ...

    def __call__(self, photo: Photo, mask: Mask) -> Rendered: ...


@dataclass(frozen=True)
class BlurTask:
    """`blur`: the background blurred (`options`), the mask enlarged along the photo's edges
    (`refine`; None: bilinear); `save_mask` also returns the mask used; `keep_empty` returns a photo
    with no subject (no probability over one half) unchanged instead of blurred all over."""

    options: BlurOptions = field(default_factory=BlurOptions)
    refine: RefineOptions | None = field(default_factory=RefineOptions)
    save_mask: bool = False
    keep_empty: bool = False
    mark: str = "blurred"

    @classmethod
    def from_options(
        cls,
        strength: float = DEFAULT_STRENGTH,
        feather: float = DEFAULT_FEATHER,
        kernel: Kernel = "gaussian",
        refine: bool = True,
        save_mask: bool = False,
        keep_empty: bool = False,
    ) -> BlurTask:
        """The task `blur`'s options name, under their names: the CLI's flags and the server's
        query parameters both come through here, so the two make the same photo."""
        blur = BlurOptions(strength=strength, feather=feather, kernel=kernel)
        return cls(blur, RefineOptions() if refine else None, save_mask, keep_empty)

    @property
    def subject_only(self) -> bool:
        return True

    def __call__(self, photo: Photo, mask: Mask) -> Rendered:
        return render_blur(photo, mask, self.options, self.refine, self.save_mask, self.keep_empty)


@dataclass(frozen=True)
class PredictTask:
    """`predict`: the mask at full resolution as alpha (subject probability x 255), class indices
    0/1/2 or a coloured overlay, enlarged along the photo's edges (`refine`; None: bilinear)."""

    mode: PredictMode = "alpha"
    refine: RefineOptions | None = field(default_factory=RefineOptions)
    mark: str = "mask"

    @classmethod
    def from_options(cls, classes: bool = False, overlay: bool = False, refine: bool = True) -> PredictTask:
        """The task `predict`'s options name (the CLI's flags, the server's query parameters)."""
        if classes and overlay:
            raise UsageError("--classes and --overlay cannot be used together")
        mode: PredictMode = "classes" if classes else "overlay" if overlay else "alpha"
        return cls(mode, RefineOptions() if refine else None)

    @property
    def subject_only(self) -> bool:
        return self.mode == "alpha"

    def __call__(self, photo: Photo, mask: Mask) -> Rendered:
        if mask.given:
            raise BlurcliError("predict computes masks; it takes none")
        return Rendered(mask_photo(photo, mask.values, self.mode, self.refine, mask.steady))


def render_blur(
    photo: Photo,
    mask: Mask,
    options: BlurOptions = BlurOptions(),
    refine: RefineOptions | None = RefineOptions(),
    keep_mask: bool = False,
    keep_empty: bool = False,
) -> Rendered:
    """Blur a photo's background under its subject mask: the model's, enlarged along the photo's
    edges, or a user's (`mask.given`), used as it is.

    Grey stays grey, 16-bit stays 16-bit, alpha is kept untouched. `keep_mask` also returns the
    full-resolution mask used, as 8-bit grey. `keep_empty` returns a photo in which no subject
    was found (no probability over one half) unchanged, instead of blurring it all over.
    """
    if keep_empty and float(mask.values.max(initial=0.0)) <= 0.5:
        empty = alpha_photo(np.zeros(photo.pixels.shape[:2], np.float32)) if keep_mask else None
        return Rendered(photo, empty, unchanged=True)
    colour = photo.colour
    if mask.given:  # already at full resolution: nothing to enlarge
        alpha, factor, small = np.clip(mask.values.astype(np.float32), 0.0, 1.0), 1, colour
    else:
        # The feather hides detail finer than `hidden_factor`: refine and weigh on the photo shrunk
        # so far, except for a saved mask (wanted at full resolution).
        full = keep_mask or refine is None
        factor = 1 if full else hidden_factor(colour.shape, options)
        small = shrink(colour, factor)
        alpha = enlarge_mask(mask.values, grey_guide(to_8bit(small)), refine)
        if mask.steady is not None:
            alpha = mask.steady(alpha, to_8bit(small))
    blurred = photo.with_colour(composite(colour, alpha, options, factor, small))
    return Rendered(blurred, alpha_photo(alpha) if keep_mask else None)


def alpha_photo(alpha: np.ndarray) -> Photo:
    """(H, W) float mask in [0, 1] -> an 8-bit grey Photo (0 background, 255 subject)."""
    return Photo(_alpha_bytes(alpha))


def _alpha_bytes(alpha: np.ndarray) -> np.ndarray:
    return np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)


def mask_from_photo(mask: Photo, size: tuple[int, int], name: str) -> Mask:
    """A user's mask image -> a given Mask at the photo's `size`, enlarged if smaller. A mask with
    transparency (a cut-out, as rembg and editors write them) is its alpha channel; otherwise its
    grey level (white = subject). A mask of another shape than the photo is refused."""
    if mask.has_alpha and mask.pixels[..., 3].min() < np.iinfo(mask.pixels.dtype).max:
        values = mask.pixels[..., 3]
    else:
        values = mask.colour
    if values.ndim == 3:
        values = cv2.cvtColor(values, cv2.COLOR_RGB2GRAY)
    alpha = values.astype(np.float32) * (1 / np.iinfo(values.dtype).max)
    (height, width), (rows, cols) = size, alpha.shape
    if abs(rows * width - cols * height) > 0.02 * height * width:  # aspect ratios differ by > 2 %
        raise BlurcliError(f"{name}: the mask is {cols}x{rows}, the photo {width}x{height} (another shape)")
    return Mask(upsample(alpha, size) if (rows, cols) != size else alpha, given=True)


def mask_photo(
    photo: Photo,
    low: np.ndarray,
    mode: PredictMode = "alpha",
    refine: RefineOptions | None = RefineOptions(),
    steady: Steadier | None = None,
) -> Photo:
    """The photo's mask at full resolution: alpha (subject probability x 255), class indices
    0/1/2, or a coloured overlay. `low` is (h, w) subject probability for alpha, else (h, w, C);
    a video's `steady` steadies the alpha."""
    guide = grey_guide(to_8bit(photo.colour))
    if mode == "alpha":
        alpha = enlarge_mask(low, guide, refine)
        return alpha_photo(steady(alpha, to_8bit(photo.colour)) if steady is not None else alpha)
    classes = decide_classes(low, guide, refine)
    if mode == "classes":
        return Photo(classes)
    return Photo(overlay(to_rgb8(photo.pixels), classes))


def decide_classes(low: np.ndarray, guide: np.ndarray, refine: RefineOptions | None) -> np.ndarray:
    """(h, w, C) class probabilities -> (H, W) class map by the rule of the alpha mask: a pixel is
    subject where its alpha is 128 or more (subject probability over one half), and then the
    likelier of the subject classes (skin or hair); so --classes and the alpha never disagree."""
    subject = _alpha_bytes(enlarge_mask(1.0 - low[..., 0], guide, refine)) >= 128
    if low.shape[-1] == 2:
        return subject.astype(np.uint8)
    parts = enlarge_classes(np.ascontiguousarray(low[..., 1:]), guide, refine) + 1
    return np.where(subject, parts, 0).astype(np.uint8)


def overlay(image: np.ndarray, classes: np.ndarray, opacity: float = 0.45) -> np.ndarray:
    """Tint skin green and hair red over the photo, for checking a mask by eye."""
    tint = _OVERLAY[classes]
    weight = np.where(classes[..., None] > 0, opacity, 0.0).astype(np.float32)
    blended = image.astype(np.float32) * (1 - weight) + tint * weight
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)


def segment_photo(
    segmenter: Segmenter, image: np.ndarray, subject_only: bool, heads: HeadOptions | None = HeadOptions()
) -> Mask:
    """(H, W, 3) uint8 RGB -> the model's mask at model size: one pass, plus a second look at
    every head when they are not framed like a portrait (`heads`; None: the single pass only)."""
    low = segmenter.probabilities([image], subject_only=subject_only)[0]
    return Mask(low if heads is None else second_look(segmenter, image, low, subject_only, heads))


def apply(
    task: Task, photo: Photo, segmenter: Segmenter, heads: HeadOptions | None = HeadOptions()
) -> Rendered:
    """Run `task` on one photo with the model's mask."""
    return task(photo, segment_photo(segmenter, to_rgb8(photo.pixels), task.subject_only, heads))


def blur(
    photo: PhotoLike,
    segmenter: Segmenter,
    options: BlurOptions = BlurOptions(),
    heads: HeadOptions | None = HeadOptions(),
    refine: RefineOptions | None = RefineOptions(),
) -> PhotoLike:
    """The photo with its background blurred, as `blurcli blur` makes it (metadata, 16-bit and
    alpha kept). A Photo gives a Photo; bare pixels (an array) give an array."""
    return _same_kind(photo, apply(BlurTask(options, refine), _as_photo(photo), segmenter, heads).photo)


def predict(
    photo: PhotoLike,
    segmenter: Segmenter,
    mode: PredictMode = "alpha",
    heads: HeadOptions | None = HeadOptions(),
    refine: RefineOptions | None = RefineOptions(),
) -> PhotoLike:
    """The photo's mask as `blurcli predict` writes it: 8-bit alpha (subject probability x 255),
    class indices 0/1/2, or an RGB overlay, at the photo's full resolution. A Photo gives a Photo;
    bare pixels (an array) give an array."""
    rendered = apply(PredictTask(mode, refine), _as_photo(photo), segmenter, heads)
    return _same_kind(photo, rendered.photo)


def _as_photo(photo: PhotoLike) -> Photo:
    return photo if isinstance(photo, Photo) else Photo(np.asarray(photo))


def _same_kind(given: PhotoLike, result: Photo) -> PhotoLike:
    return result if isinstance(given, Photo) else result.pixels
