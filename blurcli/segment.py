"""Inference session: load a model once, then turn any photo into subject probabilities.

The network runs in ONNX Runtime (`onnx_network.py`): `blur` and `predict` never import torch.
Training and `Segmenter.from_checkpoint` run a torch module instead (`torch_network.py`); both
give the same logits to the same numpy code here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from blurcli.device import check_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.preprocess import CLASSES, SUBJECTS, normalize, resize_for_model
from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, grey_guide
from blurcli.weights import ProgressCallback, resolve_weights

if TYPE_CHECKING:
    from blurcli.checkpoint import Checkpoint
    from blurcli.onnx_network import NetworkSpec


class Network(Protocol):
    """A UNet ready to run: (N, 3, h, w) normalised float32 -> (N, outputs, h, w) float32 logits."""

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...

    def threads(self, count: int | None) -> None:
        """Run on `count` threads from now on (None: the library's default)."""
        ...


@dataclass(frozen=True)
class Prepared:
    """One photo ready for the network: `pixels` resized and padded, `size` (h, w) before padding."""

    pixels: np.ndarray
    size: tuple[int, int]


@dataclass
class Segmenter:
    """A model ready for inference, with the preprocessing its checkpoint was trained with."""

    network: Network
    input_size: int
    multiple: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = CLASSES
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
        """A torch checkpoint run by torch on `device` (BatchNorm folded, NHWC): for training,
        soups and benchmarks; `blur` runs the same weights exported to ONNX (`load`)."""
        from blurcli.onnx_network import NetworkSpec
        from blurcli.torch_network import TorchNetwork  # torch: only where training is installed

        network = TorchNetwork.from_checkpoint(checkpoint, device, source, fuse, channels_last)
        return cls._from_network(network, NetworkSpec.of(checkpoint), source, subject)

    @classmethod
    def load(
        cls,
        weights: str | None = None,
        device: str | None = None,
        on_progress: ProgressCallback | None = None,
        subject: str | None = None,
    ) -> Segmenter:
        """Locate (shipped name, path or URL), verify and load weights; the one way the CLI gets a
        model. An ONNX file runs as it is; a torch checkpoint is exported to ONNX once (cached)."""
        from blurcli.onnx_network import cuda_available, load_onnx

        path = resolve_weights(weights, on_progress, subject)
        if check_device(device).startswith("cuda") and not cuda_available():
            return cls._torch_on_cuda(path, device, subject)
        return cls._from_network(*load_onnx(path, device), str(path), subject)

    @classmethod
    def from_onnx(
        cls, model: bytes, device: str | None = None, source: str = "weights", subject: str | None = None
    ) -> Segmenter:
        """A serialised blurcli ONNX model (`export.onnx_model`) run by ONNX Runtime on `device`."""
        from blurcli.onnx_network import onnx_network

        return cls._from_network(*onnx_network(model, device, source), source, subject)

    @classmethod
    def _from_network(
        cls, network: Network, spec: NetworkSpec, source: str, subject: str | None
    ) -> Segmenter:
        return cls(
            network=network,
            input_size=spec.input_size,
            multiple=spec.multiple,
            mean=spec.mean,
            std=spec.std,
            classes=spec.classes,
            subject=choose_subject(spec.subjects, subject, source),
            subjects=spec.subjects,
        )

    @classmethod
    def _torch_on_cuda(cls, path: Path, device: str | None, subject: str | None) -> Segmenter:
        """--device cuda without onnxruntime-gpu: the torch checkpoint (the file, or a shipped
        model's .pt twin) in torch on CUDA, where torch is installed with it."""
        from blurcli.onnx_network import is_torch_file

        twin = path if is_torch_file(path) else path.with_suffix(".pt")
        try:
            import torch

            usable = twin.is_file() and torch.cuda.is_available()
        except ImportError:
            usable = False
        if not usable:
            raise UsageError(
                f"--device {device}: CUDA is not available here (it needs onnxruntime-gpu, or torch "
                "with CUDA and the model's torch checkpoint)"
            )
        from blurcli.checkpoint import load_checkpoint

        return cls.from_checkpoint(load_checkpoint(twin), device, str(twin), subject=subject)

    @contextmanager
    def threads(self, count: int | None) -> Iterator[None]:
        """Run the network on `count` threads inside the block (the batch engine's workers keep the
        other cores busy, and a multi-threaded pass would wait on them at every layer)."""
        self.network.threads(count)
        try:
            yield
        finally:
            self.network.threads(None)

    def prepare(self, image: np.ndarray) -> Prepared:
        """(H, W, 3) uint8 RGB -> the model's input (resized, padded); cheap, safe on any thread."""
        padded, size = resize_for_model(image, self.input_size, self.multiple)
        return Prepared(padded, size)

    def forward(
        self, prepared: Sequence[Prepared], batch_size: int = 16, subject_only: bool = False
    ) -> list[np.ndarray]:
        """Prepared inputs -> per image (h, w, C) float32 probabilities of `output_classes` at model size.

        (h, w) keeps each photo's aspect ratio with its longer side at the model's input size.
        Inputs of equal shape share a forward pass. `subject_only` returns (h, w) subject
        probability (1 - background) instead, which is all blurring needs and cheaper to move.
        """
        results: list[np.ndarray | None] = [None] * len(prepared)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(prepared):
            by_shape.setdefault(item.pixels.shape, []).append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                batch = normalize(np.stack([prepared[i].pixels for i in chunk]), self.mean, self.std)
                probs = self._probabilities(self.network(batch), subject_only)
                for i, prob in zip(chunk, probs, strict=True):
                    height, width = prepared[i].size
                    results[i] = np.ascontiguousarray(prob[:height, :width])
        return results  # type: ignore[return-value]

    def _probabilities(self, logits: np.ndarray, subject_only: bool) -> np.ndarray:
        """(N, outputs, h, w) logits -> (N, h, w) subject probability, or (N, h, w, C) class
        probabilities of `output_classes`."""
        parts = len(self.classes)
        if self.subject == "person":
            person = _sigmoid(logits[:, parts])
            return person if subject_only else np.stack([1.0 - person, person], axis=-1)
        probs = _softmax(logits[:, :parts], axis=1)
        return 1.0 - probs[:, 0] if subject_only else np.moveaxis(probs, 1, -1)

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


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return (0.5 * np.tanh(0.5 * logits) + 0.5).astype(np.float32)  # tanh form: no overflow


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return (shifted / shifted.sum(axis=axis, keepdims=True)).astype(np.float32)


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


def check_subject(wanted: str) -> None:
    """--subject's value must be a subject blurcli knows; else a usage error."""
    if wanted not in SUBJECTS:
        raise UsageError(f"--subject {wanted}: unknown subject (use {' or '.join(SUBJECTS)})")


def choose_subject(available: Sequence[str], wanted: str | None, source: str) -> str:
    """The subject to segment: `wanted`, which the model must have, else person when it has it."""
    if wanted is None:
        return "person" if "person" in available else "head"
    check_subject(wanted)
    if wanted not in available:
        raise BlurcliError(
            f"{source}: this model has no {wanted} output (it segments: {', '.join(available)}); "
            f"use --subject {available[0]}"
        )
    return wanted
