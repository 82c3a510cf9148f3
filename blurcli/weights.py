"""Find the weights to use: a shipped model by name, a local file, or a URL downloaded once,
verified by sha256 and cached in the user data dir."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from blurcli.errors import BlurcliError
from blurcli.paths import HOME_ENV, data_home, os_reason

# Models that ship inside blurcli, by name: `--weights NAME`. The ONNX file is what blur and
# predict run; its torch checkpoint (same name, .pt) ships beside it for fine-tuning (--init).
SHIPPED: Mapping[str, str] = {"lfw": "blurcli-lfw.onnx", "person": "blurcli-person.onnx"}
# The shipped model each subject uses when no --weights is given; the person is the default subject.
DEFAULT_SUBJECT = "person"
DEFAULT_FOR_SUBJECT: Mapping[str, str] = {"person": "person", "head": "lfw"}

ProgressCallback = Callable[[int, int | None], None]
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: a zip archive, or the legacy pickle
ONNX_MAGIC = b"\x08"  # an ONNX model is a protobuf whose first field is ir_version (field 1, varint)
# The first bytes of files people pass as weights by mistake.
_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image?)",
    b"\x1f\x8b": "a gzip archive",
    b"%PDF": "a PDF document",
}


def foreign_kind(head: bytes, wanted: str) -> str | None:
    """What a weights file is, by its first bytes, when it cannot be `wanted` ('a PyTorch file');
    None when it can."""
    if not head:
        return "an empty file"
    for signature, kind in _SIGNATURES.items():
        if head.startswith(signature):
            return f"{kind}, not {wanted}"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return f"text, not {wanted}"
    return f"not {wanted}"


def is_torch_file(path: Path) -> bool:
    """Whether a weights file is a torch checkpoint (a zip or pickle), not an ONNX model."""
    try:
        with path.open("rb") as handle:
            return handle.read(4).startswith(TORCH_MAGIC)
    except OSError:
        return False


def shipped_weights(name: str) -> Path:
    """A shipped model's file: inside the installed package (wheel), else the repository's weights/."""
    if name not in SHIPPED:
        raise BlurcliError(f"{name}: no such shipped model (shipped: {', '.join(SHIPPED)})", exit_code=2)
    here = Path(__file__).resolve().parent
    for folder in (here / "weights", here.parent / "weights"):
        if (folder / SHIPPED[name]).is_file():
            return folder / SHIPPED[name]
    raise BlurcliError(f"shipped weights {SHIPPED[name]} not found; reinstall blurcli or pass --weights")


def default_weights(subject: str | None = None) -> Path:
    """The shipped model for `subject` (None: the default subject, the person), used with no network."""
    subject = subject or DEFAULT_SUBJECT
    if subject not in DEFAULT_FOR_SUBJECT:
        raise BlurcliError(f"--subject {subject}: no shipped model for it", exit_code=2)
    return shipped_weights(DEFAULT_FOR_SUBJECT[subject])


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def split_url(spec: str) -> tuple[str, str]:
    """'URL#sha256=HEX' -> (URL, hex); a download is only used once its hash is checked."""
    url, _, fragment = spec.partition("#")
    expected = ""
    if fragment:
        key, _, value = fragment.partition("=")
        if key != "sha256" or len(value) != 64 or any(c not in "0123456789abcdefABCDEF" for c in value):
            raise BlurcliError(f"{spec}: the URL fragment must be #sha256=<64 hex digits>", exit_code=2)
        expected = value.lower()
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
    """Fetch `url` once into the cache (temp file, then rename), verified by sha256; cache hits are free.

    A cache the file system refuses (BLURCLI_HOME a file, read-only, full) is a one-line BlurcliError
    naming the folder and the reason; one that cannot be created fails before the download."""
    target = cached_path(url, sha256)
    try:
        if target.is_file():
            if sha256_of(target) == sha256:
                return target
            target.unlink()  # damaged cache entry: fetch again
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as error:
        raise _cache_error(target, error) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            _fetch(url, handle, on_progress, timeout)
        actual = sha256_of(tmp)
        if actual != sha256:
            raise BlurcliError(f"{url}: sha256 mismatch (expected {sha256}, got {actual}); file deleted")
        os.replace(tmp, target)
    except OSError as error:
        raise _cache_error(target, error) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _cache_error(target: Path, error: OSError) -> BlurcliError:
    return BlurcliError(
        f"{target.parent}: cannot keep downloaded weights there ({os_reason(error, target)}); "
        f"set {HOME_ENV} to a writable folder"
    )


def _fetch(url: str, handle: Any, on_progress: ProgressCallback | None, timeout: float) -> None:
    """Stream `url` into an open binary file, reporting (bytes done, total or None). The network's
    failures are BlurcliErrors naming the URL; a failed write is left to the caller (the cache's)."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise BlurcliError(f"{url}: download failed (HTTP {error.code} {error.reason})") from None
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError is an OSError
        raise _download_error(url, error) from None
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        done = 0
        while True:
            try:
                chunk = response.read(1 << 16)
            except (OSError, ValueError, http.client.HTTPException) as error:  # IncompleteRead
                raise _download_error(url, error) from None
            if not chunk:
                break
            handle.write(chunk)
            done += len(chunk)
            if on_progress:
                on_progress(done, total)


def _download_error(url: str, error: Exception) -> BlurcliError:
    reason = getattr(error, "reason", None) or error
    return BlurcliError(f"{url}: cannot download ({reason})")


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def resolve_weights(
    spec: str | None = None, on_progress: ProgressCallback | None = None, subject: str | None = None
) -> Path:
    """None -> the shipped model for `subject`; a shipped model's name; 'http(s)://...' ->
    downloaded, verified, cached; else a local path."""
    if spec is None or spec == "":
        return default_weights(subject)
    if spec in SHIPPED and not _exists(Path(spec)):
        return shipped_weights(spec)
    try:
        scheme = urllib.parse.urlparse(spec).scheme
    except ValueError as error:  # 'https://[::1' and the like
        raise BlurcliError(f"{spec}: not a valid URL ({error})", exit_code=2) from None
    if scheme in ("http", "https"):
        url, sha256 = split_url(spec)
        return download(url, sha256, on_progress)
    if "://" in spec:
        raise BlurcliError(f"{spec}: unsupported URL scheme (use https://)", exit_code=2)
    path = Path(spec).expanduser()
    try:
        path.stat()
    except OSError as error:
        if isinstance(error, FileNotFoundError):
            raise BlurcliError(
                f"{path}: no such weights file (shipped models: {', '.join(SHIPPED)})"
            ) from None
        raise BlurcliError(f"{path}: cannot read ({os_reason(error, path)})") from None
    return path


def resolve_checkpoint(
    spec: str | None = None, on_progress: ProgressCallback | None = None, subject: str | None = None
) -> Path:
    """As `resolve_weights`, but the torch checkpoint: a shipped model's .pt twin of its ONNX file
    (what training, soups and the torch benchmarks load)."""
    path = resolve_weights(spec, on_progress, subject)
    twin = path.with_suffix(".pt")
    return twin if path.suffix == ".onnx" and twin.is_file() else path
