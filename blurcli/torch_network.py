"""A torch module as a `segment.Network`: training's validation, soups and the benchmarks run
checkpoints this way; `blur` and `predict` run the same weights in ONNX Runtime instead."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from blurcli.checkpoint import Checkpoint, build_model
from blurcli.device import resolve_device
from blurcli.model import fuse_batchnorm


class TorchNetwork:
    """`model` on `device`: normalised (N, 3, h, w) float32 in, logits out, as numpy arrays."""

    def __init__(self, model: nn.Module, device: torch.device, channels_last: bool = False) -> None:
        self.model = model
        self.device = device
        self.channels_last = channels_last
        self._default_threads = torch.get_num_threads()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        device: str | None = None,
        source: str = "weights",
        fuse: bool = True,
        channels_last: bool = True,
    ) -> TorchNetwork:
        """The checkpoint's UNet on `device` (auto when None), BatchNorm folded, NHWC tensors (about
        20 % faster convolutions on a CPU)."""
        target = resolve_device(device)
        model = build_model(checkpoint, source)
        model = (fuse_batchnorm(model) if fuse else model).to(target)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return cls(model, target, channels_last)

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.model.eval()
        tensor = torch.from_numpy(batch).to(self.device)
        if self.channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return self.model(tensor).float().cpu().numpy()

    def threads(self, count: int | None) -> None:
        torch.set_num_threads(count or self._default_threads)
