"""Pick the device: CUDA when present, else CPU, or exactly what the user asked for.

`check_device` reads --device without importing anything heavy (blur runs in ONNX Runtime);
`resolve_device` turns it into a checked torch.device for what runs in torch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from blurcli.errors import UsageError

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(spec: str | None) -> str:
    """--device's value -> 'auto', 'cpu', 'cuda' or 'cuda:N'; anything else is a usage error."""
    spec = spec or "auto"
    if not _DEVICE.fullmatch(spec):
        raise UsageError(f"--device {spec}: unknown device (use auto, cpu, cuda or cuda:N)")
    return spec


def resolve_device(spec: str | None = None) -> torch.device:
    """'auto'/None -> cuda if available else cpu; 'cpu', 'cuda', 'cuda:N' are checked, not trusted."""
    import torch

    spec = check_device(spec)
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cpu":
        return device
    if not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: CUDA is not available on this machine")
    if device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UsageError(f"--device {spec}: no such GPU (this machine has {count})")
    return device
