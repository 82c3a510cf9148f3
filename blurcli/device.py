"""Pick the torch device: CUDA when present, else CPU, or exactly what the user asked for."""

from __future__ import annotations

import torch

from blurcli.errors import UsageError


def resolve_device(spec: str | None = None) -> torch.device:
    """'auto'/None -> cuda if available else cpu; 'cpu', 'cuda', 'cuda:N' are checked, not trusted."""
    if spec is None or spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec}: unknown device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UsageError(f"--device {spec}: unsupported device type (use auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise UsageError(f"--device {spec}: CUDA is not available on this machine")
    if device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise UsageError(f"--device {spec}: no such GPU (this machine has {count})")
    return device
