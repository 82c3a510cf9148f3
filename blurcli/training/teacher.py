"""Teacher labels: MediaPipe's selfie segmenter marks people where our datasets' own labels are silent.

A training-time step only (the optional `teacher` extra; `blur` and `predict` never import it):
`blurcli label` runs the teacher once over LFW's training photos (whose part labels call the body
below the chin background), the unlabelled LFW photos (close-ups no one labelled) and CCP's
training photos (whose bystanders are unlabelled), and writes each photo's person probability as
an 8-bit PNG. Training then reads those files (`train --person-labels`); only the teacher's labels
are used, never its weights. How each dataset's codes take them: `targets.with_teacher`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from blurcli.decode import decode_pixels
from blurcli.encode import encode_image
from blurcli.errors import BlurcliError
from blurcli.files import read_bytes, write_file
from blurcli.paths import check_writable
from blurcli.training.ccp import load_person_split
from blurcli.training.lfw import check_folder, load_split, load_unlabelled

# (H, W, 3) uint8 RGB -> (H, W) float32 person probability at the photo's size.
PersonProbability = Callable[[np.ndarray], np.ndarray]
FOLDERS = {"lfw": "lfw", "lfw-unlabelled": "lfw-unlabelled", "ccp": "ccp"}
INSTALL = "pip install 'blurcli[teacher]' (in its own environment: MediaPipe 0.10 pins an older protobuf)"


def selfie_segmenter(model_selection: int = 0, mirrored: bool = True) -> PersonProbability:
    """MediaPipe's selfie segmenter (0: general, 1: landscape) as a function of an RGB photo;
    `mirrored` averages it with its mirror image (steadier labels; the teacher runs once, so the
    cost is fine; benchmarks run it once, as its users do)."""
    try:
        import mediapipe as mp  # type: ignore[import-not-found]
    except ImportError as error:
        raise BlurcliError(f"teacher labels need MediaPipe's selfie segmenter ({error}): {INSTALL}") from None
    legacy = getattr(getattr(mp, "solutions", None), "selfie_segmentation", None)
    if legacy is None:
        version = getattr(mp, "__version__", "?")
        raise BlurcliError(f"mediapipe {version} no longer ships the selfie segmenter: {INSTALL}")
    segmenter = legacy.SelfieSegmentation(model_selection=model_selection)

    def one(image: np.ndarray) -> np.ndarray:
        mask = np.asarray(segmenter.process(np.ascontiguousarray(image)).segmentation_mask, np.float32)
        mask = mask.reshape(mask.shape[:2])
        height, width = image.shape[:2]
        if mask.shape != (height, width):
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return mask

    def person(image: np.ndarray) -> np.ndarray:
        return (one(image) + one(image[:, ::-1])[:, ::-1]) / 2

    return person if mirrored else one


@dataclass(frozen=True)
class Teacher:
    """Who labels (recorded beside the labels) and how: a person probability of an RGB photo."""

    name: str
    person: PersonProbability


def mediapipe_teacher() -> Teacher:
    """The teacher `blurcli label` uses: MediaPipe's general selfie model, mirrored mean."""
    person = selfie_segmenter(0, mirrored=True)
    import mediapipe as mp  # type: ignore[import-not-found]

    version = getattr(mp, "__version__", "?")
    return Teacher(f"mediapipe {version} selfie segmenter, general model, mirrored mean", person)


def label_photos(
    teacher: PersonProbability, names: Iterable[str], images: Iterable[np.ndarray], folder: Path
) -> int:
    """Write each photo's person probability x 255 as `folder/<name>.png`; returns how many."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, image in zip(names, images, strict=True):
        probability = np.clip(teacher(image) * 255 + 0.5, 0, 255).astype(np.uint8)
        write_file(folder / f"{name}.png", encode_image(probability, ".png"))
        count += 1
    return count


def write_teacher_labels(
    data: Path,
    person_data: Path | None,
    out: Path,
    unlabelled: int | None = None,
    limit: int | None = None,
    teacher: Teacher | None = None,
    on_folder: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Label LFW's training split, `unlabelled` of the unlabelled LFW photos (all: None) and, with
    `person_data`, CCP's training split into `out/<lfw|lfw-unlabelled|ccp>/`; `out/labels.json`
    records what was labelled and by which teacher. Returns that record."""
    for folder in (data, person_data):
        if folder is not None:
            check_folder(folder)
    check_writable([out / "labels.json"])
    teacher = teacher or mediapipe_teacher()
    counts: dict[str, int] = {}

    def run(key: str, names: Iterable[str], images: Iterable[np.ndarray]) -> None:
        counts[key] = label_photos(teacher.person, names, images, out / FOLDERS[key])
        if on_folder:
            on_folder(key, counts[key])

    lfw = load_split(data, "train", limit=limit)
    run("lfw", lfw.names, lfw.images)
    if unlabelled != 0:
        names, images = load_unlabelled(
            data, unlabelled if limit is None else min(limit, unlabelled or limit)
        )
        run("lfw-unlabelled", names, images)
    if person_data is not None:
        people = load_person_split(person_data, "train", limit=limit)
        run("ccp", people.names, people.images)
    record = {
        "teacher": teacher.name,
        "counts": counts,
        "splits": "LFW train, unlabelled LFW, CCP train (0001-0800); never a validation or test photo",
    }
    write_file(out / "labels.json", (json.dumps(record, indent=1) + "\n").encode())
    return record


def read_teacher_labels(folder: Path, names: Iterable[str], shapes: Iterable[tuple[int, int]]) -> list:
    """The teacher's probability maps (H, W) float32 for `names` from one labels folder, each
    checked against its photo's shape; a missing or foreign file is one line naming it."""
    maps = []
    for name, shape in zip(names, shapes, strict=True):
        path = folder / f"{name}.png"
        if not path.is_file():
            raise BlurcliError(f"{path}: missing (label the photos with `blurcli label`)")
        probability = decode_pixels(read_bytes(path), str(path), cv2.IMREAD_GRAYSCALE)
        if probability.shape != tuple(shape):
            raise BlurcliError(
                f"{path}: {probability.shape[1]}x{probability.shape[0]}, its photo {shape[1]}x{shape[0]}"
            )
        maps.append(probability.astype(np.float32) / 255)
    return maps
