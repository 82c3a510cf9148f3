"""A folder of person photos and masks (`images/NAME.jpg`, `masks/NAME.png`, 255 = person, every
person in the frame), the layout of people-dev: everyday photos, for validation and reports only."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from blurcli.decode import decode_pixels
from blurcli.errors import BlurcliError
from blurcli.files import read_bytes
from blurcli.training.ccp import PersonSplit

IMAGES, MASKS = "images", "masks"
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def is_people_folder(root: Path) -> bool:
    """Whether `root` holds `images/` and `masks/` side by side."""
    try:
        return (root / IMAGES).is_dir() and (root / MASKS).is_dir()
    except OSError:
        return False


def load_people(root: Path, limit: int | None = None) -> PersonSplit:
    """Every photo of `root/images` that has a mask, sorted by name: (H, W, 3) uint8 RGB photos,
    upright as `predict` sees them, and (H, W) uint8 masks (1 where the mask is 128 or more)."""
    photos = sorted(p for p in (root / IMAGES).iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
    names, images, masks = [], [], []
    for photo in photos[:limit]:
        mask_path = root / MASKS / f"{photo.stem}.png"
        if not mask_path.is_file():
            continue
        image = decode_pixels(read_bytes(photo), str(photo))  # EXIF orientation applied, as predict does
        mask = decode_pixels(read_bytes(mask_path), str(mask_path), cv2.IMREAD_GRAYSCALE)
        if mask.shape != image.shape[:2]:
            raise BlurcliError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]}, "
                f"photo {image.shape[1]}x{image.shape[0]}"
            )
        names.append(photo.stem)
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        masks.append((mask >= 128).astype(np.uint8))
    if not names:
        raise BlurcliError(f"{root}: no photos with masks in {IMAGES}/ and {MASKS}/")
    return PersonSplit(tuple(names), tuple(images), tuple(masks))
