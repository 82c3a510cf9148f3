"""Inference session: load a model once, then turn any photo into subject probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from blurcli.checkpoint import Checkpoint, build_model, load_checkpoint
from blurcli.device import resolve_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.model import fuse_batchnorm
from blurcli.preprocess import CLASSES, SUBJECTS, resize_for_model, to_tensor
from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, grey_guide
from blurcli.weights import ProgressCallback, resolve_weights


@dataclass(frozen=True)
class Prepared:
    """One photo ready for the network: `pixels` resized and padded, `size` (h, w) before padding."""

    pixels: np.ndarray
    size: tuple[int, int]


@dataclass
class Segmenter:
    """A model ready for inference, with the preprocessing its checkpoint was trained with."""

    model: nn.Module
    input_size: int
    multiple: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    device: torch.device
    classes: tuple[str, ...] = CLASSES
    channels_last: bool = False  # NHWC tensors: about 20 % faster convolutions on a CPU
    subject: str = "head"  # what the probabilities are of: "head" (LFW's classes) or "person"
    subjects: tuple[str, ...] = ("head",)  # the subjects the checkpoint has outputs for

    @property
    def output_classes(self) -> tuple[str, ...]:
        """The classes `forward` gives probabilities of: LFW's for the head, background/person else."""
        return self.classes if self.subject == "head" else ("background", "person")

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        device: str | None = None,
        source: str = "weights",
        fuse: bool = True,
        channels_last: bool = True,
        subject: str | None = None,
    ) -> Segmenter:
        """Build the network for inference on `device` (auto when None): BatchNorm folded, NHWC.

        `subject` None picks the person when the checkpoint has a person output, else the head.
        """
        subject = choose_subject(checkpoint.subjects, subject, source)
        target = resolve_device(device)
        model = build_model(checkpoint, source)
        model = (fuse_batchnorm(model) if fuse else model).to(target)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return cls(
            model=model,
            input_size=checkpoint.input_size,
            multiple=checkpoint.config.multiple,
            mean=tuple(checkpoint.normalization["mean"]),
            std=tuple(checkpoint.normalization["std"]),
            device=target,
            classes=tuple(checkpoint.classes),
            channels_last=channels_last,
            subject=subject,
            subjects=tuple(checkpoint.subjects),
        )

    @classmethod
    def load(
        cls,
        weights: str | None = None,
        device: str | None = None,
        on_progress: ProgressCallback | None = None,
        subject: str | None = None,
    ) -> Segmenter:
        """Locate (shipped name, path or URL), verify and load weights; the one way the CLI gets a model."""
        path = resolve_weights(weights, on_progress, subject)
        return cls.from_checkpoint(load_checkpoint(path), device, str(path), subject=subject)

    def prepare(self, image: np.ndarray) -> Prepared:
        """(H, W, 3) uint8 RGB -> the model's input (resized, padded); cheap, safe on any thread."""
        padded, size = resize_for_model(image, self.input_size, self.multiple)
        return Prepared(padded, size)

    @torch.inference_mode()
    def forward(
        self, prepared: Sequence[Prepared], batch_size: int = 16, subject_only: bool = False
    ) -> list[np.ndarray]:
        """Prepared inputs -> per image (h, w, C) float32 probabilities of `output_classes` at model size.

        (h, w) keeps each photo's aspect ratio with its longer side at the model's input size.
        Inputs of equal shape share a forward pass. `subject_only` returns (h, w) subject
        probability (1 - background) instead, which is all blurring needs and cheaper to move.
        """
        self.model.eval()
        results: list[np.ndarray | None] = [None] * len(prepared)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            by_shape.setdefault(item.pixels.shape, []).append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = np.stack([prepared[i].pixels for i in chunk])
                tensor = to_tensor(batch, self.mean, self.std).to(self.device)
                if self.channels_last:
                    tensor = tensor.contiguous(memory_format=torch.channels_last)
                probs = self._probabilities(self.model(tensor).float(), subject_only).cpu().numpy()
                for i, prob in zip(chunk, probs, strict=True):
                    height, width = prepared[i].size
                    results[i] = np.ascontiguousarray(prob[:height, :width])
        return results  # type: ignore[return-value]

    def _probabilities(self, logits: torch.Tensor, subject_only: bool) -> torch.Tensor:
        """(N, outputs, h, w) logits -> (N, h, w) subject probability, or (N, h, w, C) class
        probabilities of `output_classes`."""
        parts = len(self.classes)
        if self.subject == "person":
            person = torch.sigmoid(logits[:, parts])
            if subject_only:
                return person
            return torch.stack([1.0 - person, person], dim=-1)
        probs = torch.softmax(logits[:, :parts], dim=1)
        return 1.0 - probs[:, 0] if subject_only else probs.permute(0, 2, 3, 1)

    def probabilities(
        self, images: Sequence[np.ndarray], batch_size: int = 16, subject_only: bool = False
    ) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB images -> their probabilities at model size (see `forward`)."""
        return self.forward([self.prepare(image) for image in images], batch_size, subject_only)

    def foreground(self, image: np.ndarray, refine: RefineOptions | None = RefineOptions()) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 subject (person, or skin + hair) probability at full size.

        The mask follows the photo's edges (guided filter) unless `refine` is None (bilinear).
        """
        low = self.probabilities([image], subject_only=True)[0]
        return enlarge_mask(low, grey_guide(image), refine)

    def class_map(self, image: np.ndarray, refine: RefineOptions | None = RefineOptions()) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) uint8 class indices at full size."""
        return enlarge_classes(self.probabilities([image])[0], grey_guide(image), refine)


def new_segmenter(
    weights: str | None = None,
    device: str | None = None,
    on_progress: ProgressCallback | None = None,
    subject: str | None = None,
) -> Segmenter:
    """Load a model once for many photos: `weights` a shipped name, path or URL (None: the shipped
    default); `device` 'cpu', 'cuda', 'cuda:N' or None (CUDA when present); `subject` 'person',
    'head' or None (the person when the model has it)."""
    return Segmenter.load(weights, device, on_progress, subject)


def choose_subject(available: Sequence[str], wanted: str | None, source: str) -> str:
    """The subject to segment: `wanted`, which the model must have, else person when it has it."""
    if wanted is None:
        return "person" if "person" in available else "head"
    if wanted not in SUBJECTS:
        raise UsageError(f"--subject {wanted}: unknown subject (use {' or '.join(SUBJECTS)})")
    if wanted not in available:
        raise BlurcliError(
            f"{source}: this model has no {wanted} output (it segments: {', '.join(available)}); "
            f"use --subject {available[0]}"
        )
    return wanted
