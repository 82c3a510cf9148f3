"""The data a training run learns from and is validated on: LFW Part Labels, with --person-data
Clothing Co-Parsing's person masks beside it, and with --person-labels the teacher's labels where
those datasets say nothing."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from blurcli.errors import BlurcliError, UsageError
from blurcli.model import UNetConfig
from blurcli.preprocess import NORMALIZATION
from blurcli.training.ccp import PersonSplit, load_person_split, split_numbers
from blurcli.training.config import TrainConfig
from blurcli.training.dataset import SegmentationDataset
from blurcli.training.lfw import SplitData, load_split, load_unlabelled
from blurcli.training.targets import IGNORE, ccp_codes, lfw_codes, with_teacher
from blurcli.training.teacher import FOLDERS, read_teacher_labels

PersonCodes = tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]  # CCP's photos, their target codes


@dataclass(frozen=True)
class RunData:
    """A run's examples: the training set as tensors, and the splits each epoch is scored on."""

    training: SegmentationDataset
    validation: SplitData  # LFW's validation split
    people_validation: PersonSplit | None  # CCP's, with --person-data
    lfw_masks: np.ndarray  # LFW's own training labels (classes, not codes): what --class-weights counts


def load_run_data(config: TrainConfig, model_config: UNetConfig) -> RunData:
    """Read `config`'s datasets and combine them into the examples the run trains on."""
    train_split = load_split(config.data, "train", limit=config.limit)
    val_split = load_split(config.data, "validation", limit=config.limit)
    people, people_val = person_data(config)
    faces = train_split if people is None else replace(train_split, masks=lfw_codes(train_split.masks))
    if config.person_labels is not None and people is not None:
        faces, people = taught(config.person_labels, config.data, faces, people)
    dataset = SegmentationDataset(
        faces,
        config.input_size,
        model_config.multiple,
        NORMALIZATION,
        augment=config.augment,
        seed=config.seed,
        augmentation=config.augmentation,
        label_size=config.loss_size,
        people=people,
        person_repeat=config.person_repeat,
    )
    return RunData(dataset, val_split, people_val, train_split.masks)


def person_data(config: TrainConfig) -> tuple[PersonCodes | None, PersonSplit | None]:
    """With --person-data: CCP's training photos with their target codes, and its validation split."""
    if config.person_data is None:
        return None, None
    if config.subject_iou:
        raise UsageError("--subject-iou scores LFW's classes only; it does not combine with --person-data")
    people = load_person_split(config.person_data, "train", limit=config.limit)
    validation = load_person_split(config.person_data, "validation", limit=config.limit)
    return (people.images, tuple(ccp_codes(mask) for mask in people.masks)), validation


def taught(labels: Path, data: Path, faces: SplitData, people: PersonCodes) -> tuple[SplitData, PersonCodes]:
    """LFW's and CCP's training codes with the teacher's labels (`blurcli label`) where ours are
    silent, and the unlabelled LFW photos it labelled added to LFW's (their classes unsupervised)."""
    maps = read_teacher_labels(labels / FOLDERS["lfw"], faces.names, [m.shape for m in faces.masks])
    faces = replace(
        faces, masks=np.stack([with_teacher(c, m) for c, m in zip(faces.masks, maps, strict=True)])
    )
    extra = labels / FOLDERS["lfw-unlabelled"]
    if extra.is_dir() and (wanted := sorted(path.stem for path in extra.glob("*.png"))):
        faces = _with_unlabelled(faces, extra, wanted, data)
    if (labels / FOLDERS["ccp"]).is_dir():
        photos, codes = people
        names = [f"{number:04d}" for number in split_numbers("train")][: len(photos)]
        maps = read_teacher_labels(labels / FOLDERS["ccp"], names, [c.shape for c in codes])
        people = (photos, tuple(with_teacher(c, m) for c, m in zip(codes, maps, strict=True)))
    return faces, people


def _with_unlabelled(faces: SplitData, labels: Path, wanted: list[str], data: Path) -> SplitData:
    """`faces` and, after them, the unlabelled LFW photos named `wanted`, with the teacher's labels
    in `labels` for the person and no class supervised."""
    names, images = load_unlabelled(data)
    index = {name: i for i, name in enumerate(names)}
    if missing := [name for name in wanted if name not in index]:
        raise BlurcliError(f"{labels / missing[0]}.png: no such unlabelled photo in {data}")
    images = images[[index[name] for name in wanted]]
    maps = read_teacher_labels(labels, wanted, [image.shape[:2] for image in images])
    codes = np.stack([with_teacher(np.full(m.shape, IGNORE, np.uint8), m) for m in maps])
    return SplitData(
        faces.names + tuple(wanted),
        np.concatenate([faces.images, images]),
        np.concatenate([faces.masks, codes]),
    )
