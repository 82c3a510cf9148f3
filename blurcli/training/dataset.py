"""Training examples as tensors: a labelled split, augmented reproducibly per (seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from blurcli.errors import UsageError
from blurcli.preprocess import NORMALIZATION, normalize
from blurcli.training.augment import (
    Augmentation,
    augment_pair,
    box_of,
    framing_affine,
    person_view,
    random_affine,
    smooth_backdrop,
    textured_backdrop,
    warp_pair,
)
from blurcli.training.lfw import SplitData
from blurcli.training.targets import NOT_PERSON, PERSON


def to_tensor(batch: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(N, H, W, 3) or (H, W, 3) uint8 RGB -> normalised float32 tensor, channels first."""
    return torch.from_numpy(normalize(batch, mean, std))


class SegmentationDataset(Dataset):
    """Training examples as tensors: (3, S, S) float32 normalised image, (L, L) int64 labels,
    L = `label_size` (default S; larger keeps the labels' detail for a loss on enlarged logits).

    The labels are `split`'s masks as they are (LFW classes, or their `targets` codes); with
    `people` (photos and their `targets` codes, CCP), their examples follow LFW's, framed from head
    and shoulders to full body or pasted onto LFW scenes, other people's photos and backdrops,
    `person_repeat` different views of each per epoch.
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
        people: tuple[Sequence[np.ndarray], Sequence[np.ndarray]] | None = None,
        person_repeat: int = 1,
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
        self.people = people or ((), ())
        self.person_repeat = person_repeat  # views of each person photo per epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the random views of this epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.split.names) + len(self.people[0]) * self.person_repeat

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        faces = len(self.split.names)
        if index >= faces:
            person = (index - faces) % len(self.people[0])
            return self._person(person, np.random.default_rng((self.seed, self.epoch, index)))
        image, mask = self.split.images[index], self.split.masks[index]
        size, labels = self.input_size, self.label_size
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            other = int(rng.integers(faces))
            context = (self.split.images[other], self.split.masks[other])
            image, mask = augment_pair(image, mask, labels, rng, self.augmentation, context, size)
        else:
            if image.shape[:2] != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            if mask.shape != (labels, labels):
                mask = cv2.resize(mask, (labels, labels), interpolation=cv2.INTER_NEAREST)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(mask.astype(np.int64))

    def _person(self, index: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A view of person photo `index`: framed, or pasted onto a scene (augmentation only)."""
        images, codes = self.people
        size, aug = self.label_size, self.augmentation

        def background() -> tuple[np.ndarray, np.ndarray]:
            kind = rng.random()
            if kind < 1 / 3 and len(self.split.names):  # an LFW scene, its head labelled
                other = int(rng.integers(len(self.split.names)))
                picture, labels = self.split.images[other], self.split.masks[other]
                return warp_pair(picture, labels, random_affine(rng, picture.shape[0], size, aug), size, None)
            if kind < 2 / 3:  # another person's photo, that person labelled
                other = int(rng.integers(len(images)))
                box = box_of(codes[other] == PERSON) or (0.0, 0.0, *codes[other].shape[::-1])
                return warp_pair(images[other], codes[other], framing_affine(rng, box, size, aug), size, None)
            backdrop = textured_backdrop if rng.random() < aug.textured else smooth_backdrop
            return backdrop(rng, size), np.full((size, size), NOT_PERSON, np.uint8)

        if self.augment:
            image, labels = person_view(
                rng, images[index], codes[index], size, aug, PERSON, background, self.input_size
            )
        else:  # the whole person, centred
            whole = replace(aug, framing=(1.15, 1.15), rotation=0.0, flip=0.0)
            box = box_of(codes[index] == PERSON) or (0.0, 0.0, *codes[index].shape[::-1])
            image, labels = warp_pair(
                images[index], codes[index], framing_affine(rng, box, size, whole), size, None
            )
            image = cv2.resize(image, (self.input_size,) * 2, interpolation=cv2.INTER_AREA)
        return to_tensor(image, self.mean, self.std), torch.from_numpy(labels.astype(np.int64))
