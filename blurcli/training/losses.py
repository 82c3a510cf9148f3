"""The training objective: cross-entropy against the labels, optionally weighted by class, mixed
with a teacher's probabilities (distillation) and a soft subject-IoU term."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from blurcli.checkpoint import build_model, load_checkpoint
from blurcli.errors import UsageError
from blurcli.model import fuse_batchnorm
from blurcli.preprocess import CLASSES
from blurcli.training.targets import class_target, person_loss


def class_weights_from(masks: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse square-root class frequencies, normalised to mean 1: rare hair counts more."""
    counts = np.bincount(masks.ravel(), minlength=num_classes).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts / counts.sum(), 1e-6))
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


@dataclass(frozen=True)
class Objective:
    """The training loss: cross-entropy against the labels, optionally mixed with cross-entropy
    against a teacher's probabilities on the same batch (knowledge distillation).

    With `person`, the masks are `targets` codes and the network has one more output, a person
    logit after the classes: the classes learn where the codes supervise them (LFW), the person
    logit learns a binary cross-entropy (weighted by `person`) where the codes supervise it.
    """

    weights: torch.Tensor | None = None  # per-class weights of the labels' term
    teacher: nn.Module | None = None
    distill: float = 0.5
    subject_iou: float = 0.0  # weight of soft_subject_iou_loss, added to the rest
    person: float = 0.0  # weight of the person term; 0: no person output, masks are classes

    def __call__(self, logits: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Labels finer than the logits (`--loss-size`) score the logits enlarged bilinearly, as
        `eval` enlarges predictions to the labels' resolution."""
        logits = _enlarge(logits, masks.shape[-2:])
        if self.person:
            codes, masks = masks, class_target(masks)
            person = person_loss(logits[:, -1], codes)
            logits = logits[:, :-1]
            if not bool((masks >= 0).any()):  # no LFW pixel in this batch
                return self.person * person
        loss = F.cross_entropy(logits, masks, weight=self.weights, ignore_index=-100)
        if self.teacher is not None:
            with torch.no_grad():
                target = _enlarge(mirrored_probabilities(self.teacher, images), masks.shape[-2:])
            loss = (1 - self.distill) * loss + self.distill * F.cross_entropy(logits, target)
        if self.subject_iou:
            loss = loss + self.subject_iou * soft_subject_iou_loss(logits, masks)
        return loss + self.person * person if self.person else loss


def soft_subject_iou_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU of the subject (every class but 0) pooled over the batch, as eval pools its
    confusion matrix: cross-entropy scores pixels, this scores the subject's overlap itself."""
    subject = 1.0 - torch.softmax(logits, dim=1)[:, 0]
    truth = (masks > 0).to(subject.dtype)
    overlap = (subject * truth).sum()
    return 1.0 - overlap / (subject.sum() + truth.sum() - overlap).clamp_min(1e-6)


def _enlarge(maps: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, *size), bilinear with pixel centres aligned (as cv2.resize)."""
    if maps.shape[-2:] == size:
        return maps
    return F.interpolate(maps, size=tuple(size), mode="bilinear", align_corners=False)


def mirrored_probabilities(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class probabilities averaged over the batch and its left-right mirror: a teacher twice as
    costly but steadier than one pass, which is fine since it only runs during training."""
    flipped = model(images.flip(-1)).float().flip(-1)
    return (torch.softmax(model(images).float(), dim=1) + torch.softmax(flipped, dim=1)) / 2


def load_teacher(
    path: Path, norm: dict[str, list[float]], input_size: int, distill: float, device: torch.device
) -> nn.Module:
    """A frozen, BatchNorm-folded model that sees the student's batches: same classes and normalisation."""
    checkpoint = load_checkpoint(path)
    if tuple(checkpoint.classes) != CLASSES or dict(checkpoint.normalization) != norm:
        raise UsageError(f"{path}: a teacher needs the classes {CLASSES} and normalisation {norm}")
    if input_size % checkpoint.config.multiple:
        multiple = checkpoint.config.multiple
        raise UsageError(f"{path}: --input-size {input_size} is not a multiple of {multiple}")
    if not 0.0 <= distill <= 1.0:
        raise UsageError(f"--distill {distill} must lie between 0 and 1")
    teacher = fuse_batchnorm(build_model(checkpoint, str(path))).to(device)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher.eval()
