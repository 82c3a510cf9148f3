"""Inference session: load a model once, then turn any photo into subject probabilities.

`new_segmenter` is the one road from weights to a runnable model, whatever they are (a shipped
name, a path, a URL, ONNX bytes, a torch checkpoint in memory) and whichever backend runs them:
ONNX Runtime (`onnx_network.py`, what `blur` and `predict` run; torch is never imported) or torch
(`torch_network.py`: training's validation, soups, the torch benchmarks). Both give the same
logits to the same numpy code here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from blurcli.device import check_device
from blurcli.errors import BlurcliError, UsageError
from blurcli.files import read_bytes
from blurcli.onnx_network import cuda_available, open_onnx
from blurcli.preprocess import SUBJECTS, normalize, resize_for_model
from blurcli.refine import RefineOptions, enlarge_classes, enlarge_mask, grey_guide
from blurcli.spec import NetworkSpec
from blurcli.weights import ProgressCallback, is_torch_file, resolve_weights

if TYPE_CHECKING:
    from blurcli.checkpoint import Checkpoint

Backend = Literal["auto", "onnx", "torch"]
BACKENDS: tuple[Backend, ...] = ("auto", "onnx", "torch")
_NEEDS_TORCH = 'needs torch: pip install "blurcli[train]"'


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
    """A model ready for inference: its network, its spec (preprocessing and outputs) and the
    subject it segments (one of `spec.subjects`). Made by `new_segmenter`."""

    network: Network
    spec: NetworkSpec
    subject: str

    @property
    def input_size(self) -> int:
        return self.spec.input_size

    @property
    def multiple(self) -> int:
        return self.spec.multiple

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def subjects(self) -> tuple[str, ...]:
        return self.spec.subjects

    @property
    def output_classes(self) -> tuple[str, ...]:
        """The classes `forward` gives probabilities of: LFW's for the head, background/person else."""
        return self.classes if self.subject == "head" else ("background", "person")

    def at_size(self, input_size: int) -> Segmenter:
        """The same network fed photos of another longer side (the second look's wide view)."""
        return replace(self, spec=replace(self.spec, input_size=input_size))

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
                pixels = np.stack([prepared[i].pixels for i in chunk])
                batch = normalize(pixels, self.spec.mean, self.spec.std)
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
    weights: str | Path | bytes | Checkpoint | None = None,
    device: str | None = None,
    on_progress: ProgressCallback | None = None,
    subject: str | None = None,
    *,
    backend: Backend = "auto",
    source: str | None = None,
) -> Segmenter:
    """Load a model once for many photos: the one way to a Segmenter (the CLI, the library, Ray
    workers, training's validation, soups and the benchmarks all take it).

    `weights`: None (the subject's shipped model), a shipped model's name, a path or an https URL
    (sha256-verified, cached), a serialised blurcli ONNX model (bytes), or a torch `Checkpoint` in
    memory. `device`: 'cpu', 'cuda', 'cuda:N', or None/'auto' (CUDA when present). `subject`:
    'person', 'head' or None (the person when the model has it). `backend`: 'onnx' runs ONNX Runtime
    (a torch checkpoint is exported once, cached); 'torch' runs the torch checkpoint in torch,
    BatchNorm folded (the train extra); 'auto' is onnx, but torch for a CUDA device ONNX Runtime
    cannot reach. `source` names the weights in errors (default: their path, or 'weights').
    """
    if backend not in BACKENDS:
        raise UsageError(f"backend {backend}: use {', '.join(BACKENDS)}")
    if isinstance(weights, bytes):
        if backend == "torch":
            raise UsageError("ONNX bytes run in ONNX Runtime: use backend 'onnx'")
        name = source or "weights"
        return _segmenter(*open_onnx(weights, device, name), name, subject)
    if weights is None or isinstance(weights, (str, os.PathLike)):
        path = resolve_weights(None if weights is None else str(weights), on_progress, subject)
        if _in_torch(backend, device):
            return _torch_segmenter(_load_checkpoint(_torch_twin(path, device, backend)), device, subject)
        model, name = model_bytes(path)
        return _segmenter(*open_onnx(model, device, source or name), source or str(path), subject)
    name = source or "weights"  # a Checkpoint in memory
    if _in_torch(backend, device):
        return _torch_segmenter((weights, name), device, subject)
    from blurcli.export import to_onnx  # torch and onnx: a Checkpoint means they are installed

    return _segmenter(*open_onnx(to_onnx(weights, name)[0], device, name), name, subject)


def model_bytes(path: Path) -> tuple[bytes, str]:
    """A model file -> the ONNX model's bytes and the file they were read from: a torch checkpoint
    is exported once (cached), so the bytes can go to processes that have neither it nor torch."""
    if is_torch_file(path):
        from blurcli.export import cached_export  # needs torch: a clear message when it is absent

        path = cached_export(path)
    return read_bytes(path), str(path)


def _segmenter(network: Network, spec: NetworkSpec, source: str, subject: str | None) -> Segmenter:
    return Segmenter(network, spec, choose_subject(spec.subjects, subject, source))


def _in_torch(backend: Backend, device: str | None) -> bool:
    """Whether torch runs the model: asked for, or (auto) a CUDA device ONNX Runtime cannot reach."""
    if backend != "auto":
        return backend == "torch"
    return check_device(device).startswith("cuda") and not cuda_available()


def _torch_twin(path: Path, device: str | None, backend: Backend) -> Path:
    """The torch checkpoint to run: the file itself, or a shipped model's .pt twin of its ONNX
    file. With auto, only where torch reaches CUDA (it needs onnxruntime-gpu otherwise)."""
    twin = path if is_torch_file(path) else path.with_suffix(".pt")
    if backend == "auto":
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
    elif not twin.is_file():
        raise BlurcliError(f"{path}: an ONNX model; the torch backend runs its torch checkpoint (.pt)")
    return twin


def _load_checkpoint(path: Path) -> tuple[Checkpoint, str]:
    try:
        from blurcli.checkpoint import load_checkpoint
    except ImportError:
        raise BlurcliError(f"{path}: the torch backend {_NEEDS_TORCH}") from None
    return load_checkpoint(path), str(path)


def _torch_segmenter(loaded: tuple[Checkpoint, str], device: str | None, subject: str | None) -> Segmenter:
    """A checkpoint's UNet in torch on `device`, BatchNorm folded, NHWC."""
    from blurcli.torch_network import TorchNetwork  # torch: only where training is installed

    checkpoint, source = loaded
    network = TorchNetwork.from_checkpoint(checkpoint, device, source)
    return _segmenter(network, NetworkSpec.of(checkpoint), source, subject)


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
