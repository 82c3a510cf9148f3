"""Clothing Co-Parsing (Yang, Luo, Lin, CVPR 2014) as its authors publish it -> photos and person masks.

A dataset root holds `photos/NNNN.jpg` and `annotations/pixel-level/NNNN.mat` (one variable
`groundtruth`, uint8 indices into `label_list.mat`'s 59 names, 0 = null), as a folder or as an
archive of that folder (.zip, .tar, .tgz), read where it lies. The person is every non-null pixel;
only the main person is labelled (bystanders are null). scipy reads the .mat files: it is needed for
this dataset only, and imported here only.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blurcli.decode import decode_pixels
from blurcli.errors import BlurcliError, UsageError
from blurcli.paths import os_reason

# The fixed, documented split of the 1,004 pixel-labelled photos (no official one exists).
SPLITS = {"train": (1, 800), "validation": (801, 900), "test": (901, 1004)}
PHOTOS, LABELS = "photos", "annotations/pixel-level"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz")


@dataclass(frozen=True)
class PersonSplit:
    """One CCP split in memory: names `NNNN`, photos (H, W, 3) uint8 RGB and person masks (H, W)
    uint8 (1 person, 0 not), each at the photo's own size (they differ by a few rows)."""

    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]


def is_ccp(root: Path) -> bool:
    """Whether `root` looks like CCP: its folders, or one archive of them (False where the OS
    refuses to look: the LFW reader then says why)."""
    try:
        return _has_folders(root) or _archive(root) is not None
    except OSError:
        return False


def _has_folders(root: Path) -> bool:
    return (root / PHOTOS).is_dir() and (root / LABELS).is_dir()


def _archive(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    found = [p for p in sorted(root.iterdir()) if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)]
    return next((p for p in found if _has_members(p)), None)


# What reading a damaged archive raises, besides OSError.
ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    RuntimeError,
    NotImplementedError,
)


def _has_members(archive: Path) -> bool:
    try:
        return any((_member(name) or "").startswith(LABELS) for name in _names(archive))
    except (*ARCHIVE_ERRORS, OSError):
        return False


def _names(archive: Path) -> list[str]:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as handle:
            return handle.namelist()
    with tarfile.open(archive, "r:*") as handle:
        return handle.getnames()


def _loadmat() -> Callable[..., dict]:
    try:
        from scipy.io import loadmat
    except ImportError:
        raise BlurcliError(
            "reading Clothing Co-Parsing needs scipy: pip install scipy (or pip install 'blurcli[train]')"
        ) from None
    return loadmat


def decode_groundtruth(data: bytes, source: str) -> np.ndarray:
    """A CCP `.mat` file's bytes -> (H, W) uint8 person mask (1 wherever the label is not null)."""
    try:
        labels = _loadmat()(io.BytesIO(data))["groundtruth"]
    except BlurcliError:
        raise
    except Exception as error:  # scipy fails in many ways on a damaged file
        raise BlurcliError(f"{source}: not a readable CCP annotation ({type(error).__name__})") from None
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise BlurcliError(f"{source}: groundtruth is not a 2-D label map")
    if int(labels.max()) > 58 or int(labels.min()) < 0:
        bad = int(labels.max()) if int(labels.max()) > 58 else int(labels.min())
        raise BlurcliError(f"{source}: label {bad} outside the 59 CCP labels")
    return (labels > 0).astype(np.uint8)


def _reader(root: Path) -> Callable[[str], bytes]:
    """A function from a member path ('photos/0001.jpg') to its bytes: folder or archive."""
    try:
        folders = _has_folders(root)
        archive = None if folders else _archive(root)
    except OSError as error:
        raise BlurcliError(f"{root}: cannot read ({os_reason(error, root)})") from None
    if folders:

        def read(member: str) -> bytes:
            path = root / member
            try:
                return path.read_bytes()
            except OSError as error:
                raise BlurcliError(f"{path}: cannot read ({error.strerror or error})") from None

        return read
    if archive is None:
        raise BlurcliError(
            f"{root}: not Clothing Co-Parsing (need {PHOTOS}/ and {LABELS}/, or an archive of them)"
        )
    try:
        return _archive_reader(archive)
    except OSError as error:
        raise BlurcliError(f"{archive}: cannot read archive ({os_reason(error, archive)})") from None
    except ARCHIVE_ERRORS as error:
        raise BlurcliError(f"{archive}: cannot read archive ({error})") from None


def _archive_reader(archive: Path) -> Callable[[str], bytes]:
    """Read members by their path below the dataset folder, whatever folder the archive wraps them in."""
    short_of = {name: short for name in _names(archive) if (short := _member(name)) is not None}
    contents: dict[str, bytes] = {}
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as handle:
            for name, short in short_of.items():
                contents[short] = handle.read(name)
    else:
        with tarfile.open(archive, "r:*") as handle:
            for member in handle:
                short = short_of.get(member.name)
                extracted = handle.extractfile(member) if short and member.isfile() else None
                if extracted is not None:
                    contents[short] = extracted.read()

    def read(member: str) -> bytes:
        if member not in contents:
            raise BlurcliError(f"{archive}: no {member} inside")
        return contents[member]

    return read


def _member(name: str) -> str | None:
    """An archive member's path below the dataset folder ('photos/0001.jpg'), whatever folders
    wrap it; None for other members."""
    parts = name.strip("/").split("/")
    for key in (PHOTOS, LABELS):
        depth = key.count("/") + 1
        if len(parts) > depth and "/".join(parts[-depth - 1 : -1]) == key:
            return f"{key}/{parts[-1]}"
    return None


def split_numbers(split: str) -> range:
    """The photo numbers of a split: 1-800 train, 801-900 validation, 901-1004 test."""
    if split not in SPLITS:
        raise UsageError(f"--split {split}: unknown split (use {', '.join(SPLITS)})")
    first, last = SPLITS[split]
    return range(first, last + 1)


def load_person_split(
    root: Path, split: str, limit: int | None = None, workers: int = 4, step: int = 1
) -> PersonSplit:
    """Read one CCP split into memory: every `step`th photo by number, optionally only the first
    `limit` of those."""
    numbers, root = split_numbers(split), Path(root)
    try:
        is_file, is_dir = root.is_file(), root.is_dir()
    except OSError as error:
        raise UsageError(f"{root}: cannot open the dataset folder ({os_reason(error, root)})") from None
    if is_file:
        raise UsageError(f"{root}: give the folder that holds the dataset (or its archive), not a file")
    if not is_dir:
        raise UsageError(f"{root}: dataset folder does not exist")
    read = _reader(root)
    names = [f"{number:04d}" for number in numbers][::step][:limit]

    def pair(name: str) -> tuple[np.ndarray, np.ndarray]:
        photo_name, label_name = f"{PHOTOS}/{name}.jpg", f"{LABELS}/{name}.mat"
        image = decode_pixels(read(photo_name), str(root / photo_name))
        mask = decode_groundtruth(read(label_name), str(root / label_name))
        if mask.shape != image.shape[:2]:
            raise BlurcliError(
                f"{root / label_name}: labels are {mask.shape[1]}x{mask.shape[0]}, "
                f"the photo {image.shape[1]}x{image.shape[0]}"
            )
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), mask

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pairs = list(pool.map(pair, names))
    return PersonSplit(tuple(names), tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
