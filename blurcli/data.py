"""LFW Part Labels as its authors publish it -> arrays, plus the training augmentation.

A dataset root holds the split files and either the unpacked folders `lfw_funneled/` and
`parts_lfw_funneled_gt_images/` or the archives `lfw-funneled.tgz` and
`parts_lfw_funneled_gt_images.tgz`; archives are unpacked once into the user cache dir, never
into the data folder, and only the images that have a mask are taken from them.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from blurcli.errors import BlurcliError, UsageError
from blurcli.paths import cache_home

CLASSES = ("background", "skin", "hair")
# Mean and spread of RGB in [0, 1]: a fixed, dataset-independent normalisation stored in checkpoints.
NORMALIZATION: Mapping[str, tuple[float, float, float]] = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.25, 0.25, 0.25),
}
SPLIT_FILES = {"train": "parts_train.txt", "validation": "parts_validation.txt", "test": "parts_test.txt"}
IMAGES_DIR, MASKS_DIR = "lfw_funneled", "parts_lfw_funneled_gt_images"
IMAGES_ARCHIVE, MASKS_ARCHIVE = "lfw-funneled.tgz", "parts_lfw_funneled_gt_images.tgz"
# The authors' colour code, RGB -> class index.
MASK_COLOURS = {(0, 0, 255): 0, (0, 255, 0): 1, (255, 0, 0): 2}


@dataclass(frozen=True)
class SplitData:
    """One split in memory: names `Name_NNNN`, images (N, H, W, 3) uint8 RGB, masks (N, H, W) uint8."""

    names: tuple[str, ...]
    images: np.ndarray
    masks: np.ndarray


@dataclass(frozen=True)
class DatasetFolders:
    """Where the images and masks of a dataset root can be read (the root itself or the cache)."""

    root: Path
    images: Path
    masks: Path


def parse_split(text: str, source: str) -> list[str]:
    """Split-file text (`Name N` lines, N padded or not) -> stems `Name_%04d`."""
    stems = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise BlurcliError(f"{source}: line {number} is not 'Name N': {line.strip()!r}")
        stems.append(f"{parts[0]}_{int(parts[1]):04d}")
    return stems


def decode_mask(rgb: np.ndarray, source: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB in the authors' colours -> (H, W) uint8 classes (0 bg, 1 skin, 2 hair)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BlurcliError(f"{source}: mask is not a 3-channel colour image")
    binary = (rgb == 255) | (rgb == 0)
    lit = rgb == 255
    pure = binary.all(axis=-1) & (lit.sum(axis=-1) == 1)
    if not pure.all():
        bad = int((~pure).sum())
        raise BlurcliError(f"{source}: mask has {bad} pixels that are not pure red, green or blue")
    # Red lit -> hair (2), green lit -> skin (1), blue lit -> background (0).
    return (lit[..., 0] * 2 + lit[..., 1]).astype(np.uint8)


def _archive_key(*archives: Path) -> str:
    """A short id that changes when any archive changes (path, size, modification time)."""
    digest = hashlib.sha256()
    for archive in archives:
        stat = archive.stat()
        digest.update(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _extract_members(
    archive: Path, target: Path, folder: str, keep: set[str] | None, compact: bool = False
) -> list[str]:
    """Extract regular files under `folder/` whose stem is in `keep` (all if None) into `target`.

    With `compact`, PPM masks are stored as PNG (same pixels, a tenth of the disk).
    """
    stems = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                path = Path(member.name)
                if not member.isfile() or folder not in path.parts or ".." in path.parts:
                    continue
                if keep is not None and path.stem not in keep:
                    continue
                source = tar.extractfile(member)
                if source is None:
                    continue
                destination = target / Path(*path.parts[path.parts.index(folder) :])
                destination.parent.mkdir(parents=True, exist_ok=True)
                with source:
                    data = source.read()
                if compact and path.suffix.lower() == ".ppm":
                    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                    if pixels is not None:
                        _, encoded = cv2.imencode(".png", pixels)
                        data, destination = encoded.tobytes(), destination.with_suffix(".png")
                destination.write_bytes(data)
                stems.append(path.stem)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise BlurcliError(f"{archive}: cannot read archive ({error})") from None
    return stems


def _unpack(root: Path) -> DatasetFolders:
    """Unpack the two archives of `root` into the cache once (masks, then only labelled images)."""
    images_archive, masks_archive = root / IMAGES_ARCHIVE, root / MASKS_ARCHIVE
    target = cache_home() / "lfw-parts" / _archive_key(images_archive, masks_archive)
    if not (target / ".complete").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            labelled = set(_extract_members(masks_archive, staging, MASKS_DIR, None, compact=True))
            _extract_members(images_archive, staging, IMAGES_DIR, labelled)
            (staging / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return DatasetFolders(root, target / IMAGES_DIR, target / MASKS_DIR)


def locate_dataset(root: Path) -> DatasetFolders:
    """Find images and masks under `root`: unpacked folders win, else the archives (unpacked to cache)."""
    if not root.is_dir():
        raise UsageError(f"{root}: dataset folder does not exist")
    if (root / IMAGES_DIR).is_dir() and (root / MASKS_DIR).is_dir():
        return DatasetFolders(root, root / IMAGES_DIR, root / MASKS_DIR)
    if (root / IMAGES_ARCHIVE).is_file() and (root / MASKS_ARCHIVE).is_file():
        return _unpack(root)
    raise BlurcliError(
        f"{root}: missing the images and masks (need {IMAGES_DIR}/ and {MASKS_DIR}/, "
        f"or {IMAGES_ARCHIVE} and {MASKS_ARCHIVE})"
    )


def _read_pair(folders: DatasetFolders, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """One labelled example: (H, W, 3) uint8 RGB image and its (H, W) uint8 class map."""
    person = stem.rsplit("_", 1)[0]
    image_path = folders.images / person / f"{stem}.jpg"
    mask_path = folders.masks / f"{stem}.ppm"
    if not mask_path.exists() and (folders.masks / f"{stem}.png").exists():
        mask_path = folders.masks / f"{stem}.png"  # compacted copy in the cache
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise BlurcliError(f"{image_path}: missing or not an image")
    mask = cv2.imread(str(mask_path), cv2.IMREAD_COLOR)
    if mask is None:
        raise BlurcliError(f"{mask_path}: missing or not an image")
    if mask.shape[:2] != image.shape[:2]:
        raise BlurcliError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), decode_mask(
        cv2.cvtColor(mask, cv2.COLOR_BGR2RGB), str(mask_path)
    )


def load_split(root: Path, split: str, limit: int | None = None, workers: int = 4) -> SplitData:
    """Read one official split (`train`, `validation`, `test`) into memory, optionally its first `limit`."""
    if split not in SPLIT_FILES:
        raise UsageError(f"--split {split}: unknown split (use {', '.join(SPLIT_FILES)})")
    if not Path(root).is_dir():
        raise UsageError(f"{root}: dataset folder does not exist")
    split_file = Path(root) / SPLIT_FILES[split]
    if not split_file.is_file():
        raise BlurcliError(f"{split_file}: split file missing from the dataset folder")
    stems = parse_split(split_file.read_text(), str(split_file))[:limit]
    if not stems:
        raise BlurcliError(f"{split_file}: lists no images")
    folders = locate_dataset(Path(root))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pairs = list(pool.map(lambda stem: _read_pair(folders, stem), stems))
    shapes = {image.shape for image, _ in pairs}
    if len(shapes) != 1:
        raise BlurcliError(f"{split_file}: images differ in size ({sorted(shapes)})")
    images = np.stack([image for image, _ in pairs])
    masks = np.stack([mask for _, mask in pairs])
    return SplitData(tuple(stems), images, masks)


def to_tensor(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB -> (N, 3, H, W) or (3, H, W) float32, normalised."""
    pixels = torch.from_numpy(np.ascontiguousarray(batch)).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=torch.float32)
    std_t = torch.tensor(std, dtype=torch.float32)
    return ((pixels - mean_t) / std_t).movedim(-1, -3)


def model_shape(height: int, width: int, input_size: int, multiple: int) -> tuple[int, int]:
    """(h, w) an image is resized to: aspect kept, longer side `input_size`, at least `multiple`."""
    scale = input_size / max(height, width)
    return max(multiple, round(height * scale)), max(multiple, round(width * scale))


def resize_for_model(image: np.ndarray, input_size: int, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(H, W, 3) uint8 -> (padded (h', w', 3) uint8 with sides % multiple == 0, (h, w) before padding).

    The picture is resized (aspect kept, longer side = input_size) and padded bottom/right by
    replicating its edge, so the network sees no artificial border.
    """
    height, width = model_shape(image.shape[0], image.shape[1], input_size, multiple)
    while image.shape[0] >= 4 * height and image.shape[1] >= 4 * width:
        # Halving first is area averaging too, and 6x faster than one big non-integer step.
        half = ((image.shape[1] + 1) // 2, (image.shape[0] + 1) // 2)
        image = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
    interpolation = cv2.INTER_AREA if height < image.shape[0] else cv2.INTER_LINEAR
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
        resized = cv2.copyMakeBorder(resized, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    return resized, (height, width)


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
    cells = int(rng.integers(2, 7))
    coarse = rng.uniform(0, 255, (cells, cells, 3))
    grey = coarse.mean(axis=-1, keepdims=True)
    coarse = grey + (coarse - grey) * rng.uniform(0.1, 0.7)  # muted colours, like real backdrops
    backdrop = cv2.resize(coarse.astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, rng.uniform(0, 10), backdrop.shape)
    return np.clip(backdrop + noise, 0, 255).astype(np.uint8), np.zeros((size, size), np.uint8)


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


class SegmentationDataset(Dataset):
    """Training examples as tensors: (3, S, S) float32 normalised image, (L, L) int64 classes,
    L = `label_size` (default S; larger keeps the labels' detail for a loss on enlarged logits).

    With `augment`, every (seed, epoch, index) gives its own reproducible random view, so results
    do not depend on the number of loader workers.
    """

    def __init__(
        self,
        split: SplitData,
        input_size: int,
        multiple: int,
        normalization: Mapping[str, Sequence[float]] = NORMALIZATION,
        augment: bool = True,
        seed: int = 0,
        augmentation: Augmentation = Augmentation(),
        label_size: int | None = None,
    ) -> None:
        if input_size % multiple:
            raise UsageError(f"input size {input_size} is not a multiple of {multiple}")
        if label_size is not None and label_size < input_size:
            raise UsageError(f"--loss-size {label_size} is smaller than the input size {input_size}")
        self.split = split
        self.input_size = input_size
        self.label_size = label_size or input_size
        self.mean = tuple(normalization["mean"])
        self.std = tuple(normalization["std"])
        self.augment = augment
        self.seed = seed
        self.augmentation = augmentation
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the random views of this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.names)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.split.images[index], self.split.masks[index]
        size, labels = self.input_size, self.label_size
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            other = int(rng.integers(len(self)))
            context = (self.split.images[other], self.split.masks[other])
            image, mask = augment_pair(image, mask, labels, rng, self.augmentation, context, size)
        else:
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            if mask.shape != (labels, labels):
                mask = cv2.resize(mask, (labels, labels), interpolation=cv2.INTER_NEAREST)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(mask.astype(np.int64))
