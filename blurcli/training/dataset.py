"""Training examples as tensors: a labelled split, augmented reproducibly per (seed, epoch, index)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from blurcli.errors import UsageError
from blurcli.preprocess import NORMALIZATION, to_tensor
from blurcli.training.augment import Augmentation, augment_pair
from blurcli.training.lfw import SplitData


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
