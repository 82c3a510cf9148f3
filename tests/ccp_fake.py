"""Build tiny datasets in the exact Clothing Co-Parsing layout, so tests need no download.

The authors' release is a folder with `photos/NNNN.jpg`, `annotations/pixel-level/NNNN.mat` (one
variable `groundtruth`, uint8 [h, w], indices into `label_list.mat`'s 59 names, 0 = null) and
`label_list.mat`; GitHub's download wraps it in one top folder (`ccp-master/...`).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
from scipy.io import savemat

# label_list.mat of the real release, in order: index 0 is null, 19 hair, 41 skin, 5 blouse, 39 shoes.
# fmt: off
LABEL_NAMES = (
    "null", "accessories", "bag", "belt", "blazer", "blouse", "bodysuit", "boots", "bra", "bracelet",
    "cape", "cardigan", "clogs", "coat", "dress", "earrings", "flats", "glasses", "gloves", "hair", "hat",
    "heels", "hoodie", "intimate", "jacket", "jeans", "jumper", "leggings", "loafers", "necklace",
    "panties", "pants", "pumps", "purse", "ring", "romper", "sandals", "scarf", "shirt", "shoes", "shorts",
    "skin", "skirt", "sneakers", "socks", "stockings", "suit", "sunglasses", "sweater", "sweatshirt",
    "swimwear", "t-shirt", "tie", "tights", "top", "vest", "wallet", "watch", "wedges",
)
# fmt: on
NULL, BLOUSE, HAIR, PANTS, SHOES, SKIN = 0, 5, 19, 31, 39, 41
TOP_FOLDER = "ccp-master"  # what the GitHub download wraps the release in
PHOTO_WIDTH, PHOTO_HEIGHT = 40, 60


def synthetic_person(
    rng: np.random.Generator, width: int = PHOTO_WIDTH, height: int = PHOTO_HEIGHT
) -> tuple[np.ndarray, np.ndarray]:
    """A standing figure on a textured backdrop: (H, W, 3) uint8 RGB and its (H, W) uint8 CCP labels
    (hair, skin, blouse, pants, shoes; null around)."""
    labels = np.zeros((height, width), np.uint8)
    cx = width // 2 + int(rng.integers(-3, 4))
    unit = height / 60
    head_y, head_r = int(10 * unit), max(2, int(5 * unit))
    neck, waist, ankle, sole = (int(v * unit) for v in (16, 34, 53, 57))
    half = max(3, int(7 * unit))
    labels[neck:waist, cx - half - 2 : cx + half + 2] = SKIN  # arms, covered below by the blouse
    labels[neck:waist, cx - half : cx + half] = BLOUSE
    labels[waist:ankle, cx - half + 1 : cx - 1] = PANTS
    labels[waist:ankle, cx + 1 : cx + half - 1] = PANTS
    labels[ankle:sole, cx - half : cx - 1] = SHOES
    labels[ankle:sole, cx + 1 : cx + half] = SHOES
    cv2.circle(labels, (cx, head_y), head_r, SKIN, -1)
    cv2.ellipse(labels, (cx, head_y), (head_r, head_r), 0, 180, 360, HAIR, -1)
    colours = {
        HAIR: rng.integers(10, 50, 3),
        SKIN: (rng.integers(190, 230), rng.integers(140, 170), rng.integers(110, 140)),
        BLOUSE: rng.integers(0, 256, 3),
        PANTS: rng.integers(0, 256, 3),
        SHOES: rng.integers(0, 60, 3),
    }
    image = np.empty((height, width, 3), np.float32)
    image[:] = rng.integers(60, 200, 3)
    image += 25 * np.sin(np.arange(width) / rng.uniform(1.5, 4.0))[None, :, None]  # striped backdrop
    image += rng.normal(0, 10, image.shape)
    for label, colour in colours.items():
        image[labels == label] = colour
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def write_groundtruth(path: Path, labels: np.ndarray) -> None:
    """One pixel-level annotation as the authors store it: `groundtruth`, uint8 [h, w]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"groundtruth": np.asarray(labels, np.uint8)}, do_compression=True)


def make_ccp_dataset(
    root: Path,
    count: int = 8,
    *,
    numbers: Iterable[int] | None = None,
    archive: str | None = None,
    top: str = TOP_FOLDER,
    seed: int = 0,
) -> Path:
    """Write a synthetic CCP release under `root`: photos 0001..`count` (or exactly `numbers`) with
    their annotations and label_list.mat, as loose folders or, with `archive` ("zip", "tgz"), as
    one archive `<top>.zip` / `<top>.tgz`, the only thing left in `root`, that wraps the release in
    the folder `top` (as GitHub's download does; "" for none).

    Photos are 40 px wide and 60-62 px high (the real ones differ by a few rows too); the same
    seed and numbers give the same files whatever the layout."""
    if archive not in (None, "zip", "tgz"):
        raise ValueError(f"archive must be None, 'zip' or 'tgz', not {archive!r}")
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    release = root / "_release" if archive else root
    photos, annotations = release / "photos", release / "annotations" / "pixel-level"
    photos.mkdir(parents=True, exist_ok=True)
    annotations.mkdir(parents=True, exist_ok=True)
    cells = np.empty((1, len(LABEL_NAMES)), dtype=object)
    for index, name in enumerate(LABEL_NAMES):
        cells[0, index] = np.array([name])
    savemat(str(release / "label_list.mat"), {"label_list": cells})
    for number in sorted(numbers) if numbers is not None else range(1, count + 1):
        image, labels = synthetic_person(rng, height=PHOTO_HEIGHT + number % 3)
        cv2.imwrite(str(photos / f"{number:04d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        write_groundtruth(annotations / f"{number:04d}.mat", labels)
    if not archive:
        return root
    members = [
        (path, "/".join(filter(None, (top, path.relative_to(release).as_posix()))))
        for path in sorted(release.rglob("*"))
    ]
    name = root / f"{Path(top).name or 'ccp'}.{archive}"
    if archive == "zip":
        with zipfile.ZipFile(name, "w", zipfile.ZIP_DEFLATED) as handle:
            for path, member in members:
                handle.write(path, member)
    else:
        with tarfile.open(name, "w:gz") as handle:
            for path, member in members:
                handle.add(path, arcname=member, recursive=False)
    shutil.rmtree(release)
    return root
