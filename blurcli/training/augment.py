"""Random training views: geometry (framing, rotation, flips, surroundings), then photometry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random training transforms; defaults cover selfies and half-body framing."""

    scale: tuple[float, float] = (0.85, 1.25)  # LFW-like framing
    zoom_out: float = 0.4  # probability of a smaller head instead, anywhere in the frame
    zoom_out_scale: tuple[float, float] = (0.3, 0.85)
    shift: float = 0.08  # translation, fraction of the output side (plus the room a smaller head leaves)
    rotation: float = 20.0  # degrees, either way
    flip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.3
    saturation: float = 0.4
    hue: float = 8.0  # OpenCV hue units (degrees / 2)
    gamma: float = 0.3
    grayscale: float = 0.05
    blur: float = 0.2  # probability of a Gaussian blur
    noise: float = 0.3  # probability of Gaussian noise
    jpeg: float = 0.3  # probability of a JPEG round trip
    context: float = 0.4  # probability that another labelled photo surrounds a zoomed-out head
    # Person photos (CCP): a window from head and shoulders (0.35 of the person's height) to the
    # full body with room around it (1.3); or the person cut out and pasted, `paste_height` of the
    # frame tall, onto another photo or a backdrop, with a second person pasted beside (`group`).
    framing: tuple[float, float] = (0.35, 1.3)
    paste: float = 0.5
    paste_height: tuple[float, float] = (0.25, 0.95)
    group: float = 0.3
    textured: float = 0.0  # of the backdrops people are pasted onto, the share of busy natural textures


def random_affine(rng: np.random.Generator, source: int, size: int, aug: Augmentation) -> np.ndarray:
    """A (2, 3) matrix mapping a source x source picture to size x size: flip, scale, rotate, shift."""
    low, high = aug.zoom_out_scale if rng.random() < aug.zoom_out else aug.scale
    zoom = math.exp(rng.uniform(math.log(low), math.log(high)))
    angle = rng.uniform(-aug.rotation, aug.rotation)
    matrix = cv2.getRotationMatrix2D((source / 2, source / 2), angle, zoom * size / source)
    reach = aug.shift + max(0.0, 1.0 - zoom) / 2  # a smaller head may sit anywhere in the frame
    matrix[:, 2] += (size - source) / 2 + rng.uniform(-reach, reach, 2) * size
    if rng.random() < aug.flip:
        matrix = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def warp_pair(
    image: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    size: int,
    fill: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (bilinear) and mask (nearest) to size x size.

    `fill` is the (size, size, 3) uint8 picture and (size, size) labels shown where the warp
    leaves the picture; None replicates the picture's edge (and its labels).
    """
    border = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_TRANSPARENT
    fill_image, fill_labels = (None, None) if fill is None else (fill[0].copy(), fill[1].copy())
    warped = cv2.warpAffine(
        image, matrix, (size, size), dst=fill_image, flags=cv2.INTER_LINEAR, borderMode=border
    )
    labels = cv2.warpAffine(
        mask, matrix, (size, size), dst=fill_labels, flags=cv2.INTER_NEAREST, borderMode=border
    )
    return warped, labels


def random_fill(
    rng: np.random.Generator,
    size: int,
    aug: Augmentation,
    context: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """What surrounds a zoomed-out picture: its replicated edge, a smooth random backdrop, or
    (with `context`, another labelled photo) that photo at its own random framing, labels and all,
    so small heads are also learnt among real clothes, rooms and other people."""
    if context is not None and rng.random() < aug.context:
        return warp_pair(*context, random_affine(rng, context[0].shape[0], size, aug), size, None)
    if rng.random() < 0.3:
        return None
    return smooth_backdrop(rng, size), np.zeros((size, size), np.uint8)


def smooth_backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: a smooth random backdrop of muted colours with a little noise."""
    cells = int(rng.integers(2, 7))
    coarse = rng.uniform(0, 255, (cells, cells, 3))
    grey = coarse.mean(axis=-1, keepdims=True)
    coarse = grey + (coarse - grey) * rng.uniform(0.1, 0.7)  # muted colours, like real backdrops
    backdrop = cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, rng.uniform(0, 10), backdrop.shape)
    return np.clip(backdrop + noise, 0, 255).astype(np.uint8)


# Colours of grass, leaves, bark, soil, sand, rock, water and sky: outdoor scenes that neither CCP's
# streets nor LFW's rooms show, made up here (no photo of any dataset goes into them).
_NATURE = np.array(
    [[70, 110, 40], [120, 150, 60], [150, 110, 50], [110, 70, 40], [200, 180, 130], [130, 130, 125],
     [60, 90, 120], [170, 200, 230], [40, 50, 30], [190, 120, 60]],
    np.float32,
)  # fmt: skip


def textured_backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8: a busy, natural-looking texture with no person in it (fractal noise
    from coarse to pixel-fine, through two or three colours of grass, leaves, soil, rock, water or
    sky), a hard negative for the person output."""
    field = np.zeros((size, size), np.float32)
    for octave in range(int(rng.integers(3, 7))):
        cells = 2 ** (octave + 2)
        noise = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        field += (
            cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC) * rng.uniform(0.4, 1.0) ** octave
        )
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    colours = _NATURE[rng.choice(len(_NATURE), int(rng.integers(2, 4)), replace=False)]
    position = field * (len(colours) - 1)
    low = np.floor(position).astype(int).clip(0, len(colours) - 2)
    mix = (position - low)[..., None]
    pixels = colours[low] * (1 - mix) + colours[low + 1] * mix
    pixels += rng.normal(0, rng.uniform(3, 20), pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def photometric(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> a copy with random lighting, colour, blur, noise and JPEG artefacts."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-aug.hue, aug.hue)) % 180
    hsv[..., 1] *= rng.uniform(1 - aug.saturation, 1 + aug.saturation)
    pixels = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if rng.random() < aug.grayscale:
        pixels[:] = pixels.mean(axis=-1, keepdims=True)
    contrast = rng.uniform(1 - aug.contrast, 1 + aug.contrast)
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
    pixels *= rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    pixels = 255.0 * (np.clip(pixels, 0, 255) / 255.0) ** math.exp(rng.uniform(-aug.gamma, aug.gamma))
    if rng.random() < aug.blur:
        pixels = cv2.GaussianBlur(pixels, (0, 0), rng.uniform(0.4, 1.8))
    if rng.random() < aug.noise:
        pixels += rng.normal(0, rng.uniform(2, 12), pixels.shape).astype(np.float32)
    out = np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < aug.jpeg:
        quality = int(rng.integers(25, 90))
        _, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        out = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
    return out


def augment_pair(
    image: np.ndarray,
    mask: np.ndarray,
    size: int,
    rng: np.random.Generator,
    aug: Augmentation,
    context: tuple[np.ndarray, np.ndarray] | None = None,
    image_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One random training view of (image, mask) at size x size: geometry, then photometry.

    `context` (another image and its mask) may fill the frame around a zoomed-out picture. With
    `image_size`, the picture is then area-resized to that side (as photos are for the model)
    while the labels keep `size`, finer than the model's input.
    """
    matrix = random_affine(rng, image.shape[0], size, aug)
    warped, labels = warp_pair(image, mask, matrix, size, random_fill(rng, size, aug, context))
    if image_size is not None and image_size != size:
        warped = cv2.resize(warped, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return photometric(warped, rng, aug), labels


def box_of(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) around a mask's nonzero pixels, or None when it has none."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return None
    return float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)


def framing_affine(
    rng: np.random.Generator, box: tuple[float, float, float, float], size: int, aug: Augmentation
) -> np.ndarray:
    """A (2, 3) matrix showing a square window around a person's box at size x size: from head and
    shoulders (the window's top near the head) to the whole body with room, rotated and flipped."""
    x0, y0, x1, y1 = box
    height, width = y1 - y0, x1 - x0
    low, high = aug.framing
    side = max(height * math.exp(rng.uniform(math.log(low), math.log(high))), 1.05 * min(width, height), 8.0)
    centre_x = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * side
    if side < height:  # a close framing keeps the head in view
        centre_y = y0 + side / 2 - rng.uniform(0.03, 0.2) * side
    else:
        centre_y = (y0 + y1) / 2 + rng.uniform(-0.1, 0.1) * (side - height + 0.2 * height)
    angle = rng.uniform(-aug.rotation / 2, aug.rotation / 2)
    matrix = cv2.getRotationMatrix2D((centre_x, centre_y), angle, size / side)
    matrix[:, 2] += (size / 2 - centre_x, size / 2 - centre_y)
    if rng.random() < aug.flip:
        matrix = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def paste_person(
    rng: np.random.Generator,
    canvas: tuple[np.ndarray, np.ndarray],
    person: tuple[np.ndarray, np.ndarray],
    aug: Augmentation,
    person_code: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a person out of `person` (image, codes) and paste them onto `canvas` (size x size image,
    codes) at a random height and place; the cut's edge is softened so it is no cue."""
    image, codes = person
    size = canvas[0].shape[0]
    mask = (codes == person_code).astype(np.float32)
    box = box_of(mask)
    if box is None:
        return canvas
    x0, y0, x1, y1 = box
    height = size * rng.uniform(*aug.paste_height)
    scale = height / (y1 - y0)
    left = rng.uniform(-0.3 * (x1 - x0) * scale, size - 0.7 * (x1 - x0) * scale)
    top = rng.uniform(0.0, max(size - height, 0.0) + 0.3 * height)
    matrix = np.array([[scale, 0.0, left - x0 * scale], [0.0, scale, top - y0 * scale]])
    if rng.random() < aug.flip:
        matrix = np.array([[-1.0, 0.0, size], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0, 0, 1]])
    pixels = cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(mask, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.5, 1.5))[..., None]
    blended = canvas[0].astype(np.float32) * (1 - alpha) + pixels.astype(np.float32) * alpha
    labels = np.where(alpha[..., 0] > 0.5, np.uint8(person_code), canvas[1])
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8), labels


def person_view(
    rng: np.random.Generator,
    image: np.ndarray,
    codes: np.ndarray,
    size: int,
    aug: Augmentation,
    person_code: int,
    background: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
    image_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One random training view of a person photo (image, codes) at size x size: framed anywhere
    from head and shoulders to the whole body, or cut out and pasted (alone or with a second
    person) onto what `background()` returns (a size x size view and its codes); then photometry.
    With `image_size`, the picture is area-resized to that side while the codes keep `size`."""
    box = box_of(codes == person_code)
    if box is not None and background is not None and rng.random() < aug.paste:
        view = background()
        for _ in range(1 + int(rng.random() < aug.group)):
            view = paste_person(rng, view, (image, codes), aug, person_code)
        warped, labels = view
    else:
        height, width = codes.shape
        box = box or (0.0, 0.0, float(width), float(height))
        warped, labels = warp_pair(image, codes, framing_affine(rng, box, size, aug), size, None)
    if image_size is not None and image_size != size:
        warped = cv2.resize(warped, (image_size, image_size), interpolation=cv2.INTER_AREA)
    return photometric(warped, rng, aug), labels
