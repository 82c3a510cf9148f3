"""Find, download, verify, cache and load model checkpoints.

A checkpoint is one `torch.save`d dict of plain values and tensors (no pickled code), read with
`torch.load(weights_only=True)`. It describes itself: architecture, input size, classes,
normalisation, validation figures and the split they came from.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from blurcli.data import CLASSES, NORMALIZATION
from blurcli.errors import BlurcliError
from blurcli.io import write_bytes_atomic
from blurcli.model import UNet, UNetConfig
from blurcli.paths import data_home

FORMAT = "blurcli-unet"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = "blurcli-lfw.pt"
# sha256 of weights published at known URLs, so `--weights URL` needs no `#sha256=` for them.
KNOWN_MODELS: Mapping[str, str] = {}

ProgressCallback = Callable[[int, int | None], None]


@dataclass
class Checkpoint:
    """Weights plus everything needed to use them; `resume` holds optimiser state for --resume."""

    config: UNetConfig
    state_dict: Mapping[str, torch.Tensor]
    input_size: int
    classes: tuple[str, ...] = CLASSES
    normalization: Mapping[str, Any] = field(
        default_factory=lambda: {k: list(v) for k, v in NORMALIZATION.items()}
    )
    metrics: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    resume: Mapping[str, Any] | None = None


def save_checkpoint(path: Path, checkpoint: Checkpoint, half: bool = False) -> None:
    """Write atomically; `half` stores float tensors as float16 (half the size, same predictions)."""
    tensors = {
        k: v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()
        for k, v in checkpoint.state_dict.items()
    }
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": checkpoint.config.to_dict(),
        "state_dict": tensors,
        "input_size": int(checkpoint.input_size),
        "classes": list(checkpoint.classes),
        "normalization": {k: [float(x) for x in v] for k, v in checkpoint.normalization.items()},
        "metrics": dict(checkpoint.metrics),
        "info": dict(checkpoint.info),
        "resume": dict(checkpoint.resume) if checkpoint.resume is not None else None,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint safely (weights_only); anything else is a one-line BlurcliError."""
    if not path.exists():
        raise BlurcliError(f"{path}: no such weights file")
    if path.is_dir():
        raise BlurcliError(f"{path}: is a directory, not a weights file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load fails in many ways on a damaged or foreign file
        raise BlurcliError(f"{path}: not a readable weights file ({_reason(error)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BlurcliError(f"{path}: not a blurcli checkpoint")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise BlurcliError(f"{path}: written by a newer blurcli (format {payload['version']}); upgrade")
    try:
        return Checkpoint(
            config=UNetConfig.from_dict(payload["config"]),
            state_dict={
                k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()
            },
            input_size=int(payload["input_size"]),
            classes=tuple(payload["classes"]),
            normalization=payload["normalization"],
            metrics=payload.get("metrics") or {},
            info=payload.get("info") or {},
            resume=payload.get("resume"),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        raise BlurcliError(f"{path}: damaged blurcli checkpoint (bad field {error})") from None


def _reason(error: BaseException) -> str:
    """The informative line of a torch.load failure, shortened for a one-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    picked = next((line for line in lines if "Unpickler error" in line), lines[0] if lines else "")
    return (picked or type(error).__name__)[:160]


def build_model(checkpoint: Checkpoint, source: str = "weights") -> UNet:
    """The UNet the checkpoint describes, with its weights, in eval mode."""
    model = UNet(checkpoint.config)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as error:
        detail = str(error).splitlines()[0]
        raise BlurcliError(f"{source}: weights do not match the architecture they name ({detail})") from None
    return model.eval()


def default_weights() -> Path:
    """The shipped model: inside the installed package (wheel), else the repository's weights/."""
    here = Path(__file__).resolve().parent
    for folder in (here / "weights", here.parent / "weights"):
        if (folder / DEFAULT_WEIGHTS).is_file():
            return folder / DEFAULT_WEIGHTS
    raise BlurcliError(f"default weights {DEFAULT_WEIGHTS} not found; reinstall blurcli or pass --weights")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_url(spec: str) -> tuple[str, str]:
    """'URL#sha256=HEX' -> (URL, hex); without a fragment the hash comes from KNOWN_MODELS."""
    url, _, fragment = spec.partition("#")
    expected = ""
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256" or len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise BlurcliError(f"{spec}: the URL fragment must be #sha256=<64 hex digits>", exit_code=2)
        expected = value.lower()
    expected = expected or KNOWN_MODELS.get(url, "")
    if not expected:
        raise BlurcliError(f"{url}: unknown weights; append #sha256=<hex> so the download can be verified", 2)
    return url, expected


def cached_path(url: str, sha256: str) -> Path:
    """Where a URL's weights live once downloaded: one file per content hash in the data dir."""
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pt"
    return data_home() / "weights" / f"{sha256[:16]}-{name}"


def download(
    url: str, sha256: str, on_progress: ProgressCallback | None = None, timeout: float = 30.0
) -> Path:
    """Fetch `url` once into the cache (temp file, then rename), verified by sha256; cache hits are free."""
    target = cached_path(url, sha256)
    if target.is_file():
        if sha256_of(target) == sha256:
            return target
        target.unlink()  # damaged cache entry: fetch again
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _fetch(url, handle, on_progress, timeout)
        actual = sha256_of(tmp)
        if actual != sha256:
            raise BlurcliError(f"{url}: sha256 mismatch (expected {sha256}, got {actual}); file deleted")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _fetch(url: str, handle: Any, on_progress: ProgressCallback | None, timeout: float) -> None:
    """Stream `url` into an open binary file, reporting (bytes done, total or None)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            for chunk in iter(lambda: response.read(1 << 16), b""):
                handle.write(chunk)
                done += len(chunk)
                if on_progress:
                    on_progress(done, total)
    except urllib.error.HTTPError as error:
        raise BlurcliError(f"{url}: download failed (HTTP {error.code} {error.reason})") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise BlurcliError(f"{url}: cannot download ({reason})") from None


def resolve_weights(spec: str | None = None, on_progress: ProgressCallback | None = None) -> Path:
    """None -> the shipped default; 'http(s)://...' -> downloaded, verified, cached; else a local path."""
    if spec is None or spec == "":
        return default_weights()
    scheme = urllib.parse.urlparse(spec).scheme
    if scheme in ("http", "https"):
        url, sha256 = split_url(spec)
        return download(url, sha256, on_progress)
    if "://" in spec:
        raise BlurcliError(f"{spec}: unsupported URL scheme (use https://)", exit_code=2)
    path = Path(spec).expanduser()
    if not path.exists():
        raise BlurcliError(f"{path}: no such weights file")
    return path
