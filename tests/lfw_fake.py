"""Build tiny datasets in the exact LFW Part Labels layout, so tests need no download."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np

SPLIT_FILES = {"train": "parts_train.txt", "validation": "parts_validation.txt", "test": "parts_test.txt"}
HAIR_RGB, SKIN_RGB, BG_RGB = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def synthetic_face(rng: np.random.Generator, size: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """A head-like picture and its class map: (H, W, 3) uint8 RGB, (H, W) uint8 in {0, 1, 2}."""
    classes = np.zeros((size, size), np.uint8)
    cx = int(size * rng.uniform(0.4, 0.6))
    cy = int(size * rng.uniform(0.45, 0.6))
    rx = int(size * rng.uniform(0.18, 0.26))
    ry = int(rx * rng.uniform(1.15, 1.35))
    cv2.ellipse(classes, (cx, cy - ry // 3), (int(rx * 1.15), int(ry * 0.9)), 0, 180, 360, 2, -1)
    cv2.ellipse(classes, (cx, cy), (rx, ry), 0, 0, 360, 1, -1)
    background = rng.integers(40, 120, 3)
    image = np.empty((size, size, 3), np.float32)
    image[:] = background
    image += rng.normal(0, 12, (size, size, 3))
    image[classes == 1] = (rng.integers(190, 230), rng.integers(140, 170), rng.integers(110, 140))
    image[classes == 2] = rng.integers(20, 50)
    image += rng.normal(0, 4, (size, size, 3))
    return np.clip(image, 0, 255).astype(np.uint8), classes


def class_map_to_ppm_rgb(classes: np.ndarray) -> np.ndarray:
    """Class map -> the authors' colour coding (red hair, green skin, blue background), RGB."""
    palette = np.array([BG_RGB, SKIN_RGB, HAIR_RGB], np.uint8)
    return palette[classes]


def make_lfw_dataset(
    root: Path,
    counts: dict[str, int] | None = None,
    *,
    archives: bool = False,
    unlabelled: int = 2,
    seed: int = 0,
) -> Path:
    """Write a synthetic LFW Part Labels release under `root` (folders, or the two .tgz archives)."""
    counts = counts or {"train": 12, "validation": 4, "test": 4}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / "_staging" if archives else root
    images_dir = staging / "lfw_funneled"
    masks_dir = staging / "parts_lfw_funneled_gt_images"
    masks_dir.mkdir(parents=True, exist_ok=True)
    index = 0
    for split, count in counts.items():
        lines = []
        for _ in range(count):
            index += 1
            name, number = f"Person_{index:03d}", index % 3 + 1
            image, classes = synthetic_face(rng)
            person_dir = images_dir / name
            person_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{name}_{number:04d}"
            cv2.imwrite(str(person_dir / f"{stem}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            ppm = class_map_to_ppm_rgb(classes)
            cv2.imwrite(str(masks_dir / f"{stem}.ppm"), cv2.cvtColor(ppm, cv2.COLOR_RGB2BGR))
            # The authors' files pad the number sometimes and sometimes not.
            lines.append(f"{name} {number:04d}" if index % 2 else f"{name} {number}")
        (root / SPLIT_FILES[split]).write_text("\n".join(lines) + "\n")
    for extra in range(unlabelled):  # images without masks, as in the full lfw-funneled.tgz
        image, _ = synthetic_face(rng)
        person_dir = images_dir / f"Unlabelled_{extra}"
        person_dir.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(person_dir / f"Unlabelled_{extra}_0001.jpg"), image)
    if archives:
        with tarfile.open(root / "lfw-funneled.tgz", "w:gz") as tar:
            tar.add(images_dir, arcname="lfw_funneled")
        with tarfile.open(root / "parts_lfw_funneled_gt_images.tgz", "w:gz") as tar:
            tar.add(masks_dir, arcname="parts_lfw_funneled_gt_images")
        _remove_tree(staging)
    return root


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()
