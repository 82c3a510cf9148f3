"""LFW Part Labels as its authors publish it -> arrays in memory, one split at a time.

A dataset root holds the split files and either the unpacked folders `lfw_funneled/` and
`parts_lfw_funneled_gt_images/` or the archives `lfw-funneled.tgz` and
`parts_lfw_funneled_gt_images.tgz`; archives are unpacked once into the user cache dir, never
into the data folder, and only the images that have a mask are taken from them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurcli.decode import decode_pixels
from blurcli.errors import BlurcliError, UsageError
from blurcli.files import read_bytes
from blurcli.paths import HOME_ENV, cache_home, os_reason

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
                with source:
                    data = source.read()
                if compact and path.suffix.lower() == ".ppm":
                    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                    if pixels is not None:
                        _, encoded = cv2.imencode(".png", pixels)
                        data, destination = encoded.tobytes(), destination.with_suffix(".png")
                _write_cached(destination, data)
                stems.append(path.stem)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise BlurcliError(f"{archive}: cannot read archive ({error})") from None
    except OSError as error:
        raise BlurcliError(f"{archive}: cannot read archive ({os_reason(error)})") from None
    return stems


def _write_cached(destination: Path, data: bytes) -> None:
    """Write one unpacked file into the cache; the file system's refusal names the cache."""
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
    except OSError as error:
        raise _cache_error(destination, error) from None


def _cache_error(path: Path, error: OSError) -> BlurcliError:
    return BlurcliError(
        f"{path}: cannot unpack the dataset into the cache ({os_reason(error, path)}); "
        f"set {HOME_ENV} to a writable folder"
    )


def _unpack(root: Path) -> DatasetFolders:
    """Unpack the two archives of `root` into the cache once (masks, then only labelled images)."""
    images_archive, masks_archive = root / IMAGES_ARCHIVE, root / MASKS_ARCHIVE
    target = cache_home() / "lfw-parts" / _archive_key(images_archive, masks_archive)
    if not (target / ".complete").exists():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        except OSError as error:
            raise _cache_error(target.parent, error) from None
        try:
            labelled = set(_extract_members(masks_archive, staging, MASKS_DIR, None, compact=True))
            _extract_members(images_archive, staging, IMAGES_DIR, labelled)
            _write_cached(staging / ".complete", b"ok\n")
            try:
                if target.exists():
                    shutil.rmtree(target)
                os.replace(staging, target)
            except OSError as error:
                raise _cache_error(target, error) from None
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return DatasetFolders(root, target / IMAGES_DIR, target / MASKS_DIR)


def check_folder(root: Path) -> None:
    """A dataset root must be a folder: a one-line UsageError otherwise, with the OS's reason."""
    try:
        if root.is_dir():
            return
        exists = root.exists()
    except OSError as error:
        raise UsageError(f"{root}: cannot open the dataset folder ({os_reason(error, root)})") from None
    if exists:
        raise UsageError(f"{root}: a file; give the folder that holds the dataset")
    raise UsageError(f"{root}: dataset folder does not exist")


def locate_dataset(root: Path) -> DatasetFolders:
    """Find images and masks under `root`: unpacked folders win, else the archives (unpacked to cache)."""
    check_folder(root)
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
    image = decode_pixels(read_bytes(image_path), str(image_path))
    mask = decode_pixels(read_bytes(mask_path), str(mask_path))
    if mask.shape[:2] != image.shape[:2]:
        raise BlurcliError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), decode_mask(
        cv2.cvtColor(mask, cv2.COLOR_BGR2RGB), str(mask_path)
    )


def load_split(
    root: Path, split: str, limit: int | None = None, workers: int = 4, step: int = 1
) -> SplitData:
    """Read one official split (`train`, `validation`, `test`) into memory: every `step`th image in
    the split file's order, optionally only the first `limit` of those."""
    if split not in SPLIT_FILES:
        raise UsageError(f"--split {split}: unknown split (use {', '.join(SPLIT_FILES)})")
    check_folder(Path(root))
    split_file = Path(root) / SPLIT_FILES[split]
    if not split_file.is_file():
        raise BlurcliError(f"{split_file}: split file missing from the dataset folder")
    try:
        text = split_file.read_text()
    except OSError as error:
        raise BlurcliError(f"{split_file}: cannot read ({os_reason(error)})") from None
    except UnicodeDecodeError:
        raise BlurcliError(f"{split_file}: not a text file of 'Name N' lines") from None
    stems = parse_split(text, str(split_file))[::step][:limit]
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


UNLABELLED_ARCHIVE = "lfw-funneled-unlabelled.tgz"


def load_unlabelled(root: Path, limit: int | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """LFW photos without part labels (names `Name_NNNN`, (N, 250, 250, 3) uint8 RGB), sorted by
    name: from `lfw-funneled-unlabelled.tgz`, read where it lies, or else the photos of an unpacked
    `lfw_funneled/` of people none of whose photos has a mask (so no test identity leaks in).
    Teacher labels only: never scored."""
    root = Path(root)
    check_folder(root)
    archive = root / UNLABELLED_ARCHIVE
    found: dict[str, bytes] = {}
    if archive.is_file():
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    path = Path(member.name)
                    if member.isfile() and path.suffix.lower() == ".jpg" and ".." not in path.parts:
                        source = tar.extractfile(member)
                        if source is not None:
                            found[path.stem] = source.read()
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise BlurcliError(f"{archive}: cannot read archive ({error})") from None
        except OSError as error:
            raise BlurcliError(f"{archive}: cannot read archive ({os_reason(error)})") from None
    elif (root / IMAGES_DIR).is_dir() and (root / MASKS_DIR).is_dir():
        labelled_people = {path.stem.rsplit("_", 1)[0] for path in (root / MASKS_DIR).iterdir()}
        for path in sorted((root / IMAGES_DIR).glob("*/*.jpg")):
            if path.parent.name not in labelled_people:
                found[path.stem] = path.read_bytes()
    else:
        raise BlurcliError(
            f"{root}: no unlabelled photos (need {UNLABELLED_ARCHIVE}, or {IMAGES_DIR}/ beside {MASKS_DIR}/)"
        )
    names = sorted(found)[:limit]
    images = []
    for name in names:
        image = decode_pixels(found[name], f"{archive if archive.is_file() else root}: {name}.jpg")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if not images:
        raise BlurcliError(f"{root}: no unlabelled photos found")
    if len({image.shape for image in images}) != 1:
        raise BlurcliError(f"{root}: unlabelled photos differ in size")
    return tuple(names), np.stack(images)
