"""Shared fixtures: tiny synthetic LFW datasets and an isolated blurcli home."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from blurcli.checkpoint import Checkpoint, save_checkpoint
from blurcli.model import UNet, UNetConfig
from tests.lfw_fake import make_lfw_dataset

REAL_LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-parts"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test's cache and downloads out of the user's real data dir."""
    home = tmp_path_factory.mktemp("blurcli-home")
    monkeypatch.setenv("BLURCLI_HOME", str(home))
    return home


@pytest.fixture
def lock(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Lock a file or a folder. A file becomes unreadable (chmod 0), a folder read-only (chmod 0o555:
    nothing can be created in it). chmod does not stop root, whom the tests run as in CI; there,
    reading a locked file (Path.read_bytes) and creating a file or folder in a locked folder
    (os.open with O_CREAT, os.mkdir: what blurcli's writes, its up-front probes and tempfile go
    through) fail the same way (EACCES), so the error paths run there too."""
    locked: set[Path] = set()
    read_bytes, open_file, make_folder = Path.read_bytes, os.open, os.mkdir

    def refused(path: str | os.PathLike[str]) -> PermissionError:
        return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    def creates_in_locked(path: str | os.PathLike[str], dir_fd: int | None) -> bool:
        entry = Path(os.fsdecode(path))
        return dir_fd is None and entry.parent.resolve() in locked and not os.path.lexists(entry)

    def guarded_read(self: Path) -> bytes:
        if self.resolve() in locked:
            raise refused(self)
        return read_bytes(self)

    def guarded_open(
        path: str | os.PathLike[str], flags: int, mode: int = 0o777, *, dir_fd: int | None = None
    ) -> int:
        if flags & os.O_CREAT and creates_in_locked(path, dir_fd):
            raise refused(path)
        return open_file(path, flags, mode, dir_fd=dir_fd)

    def guarded_mkdir(path: str | os.PathLike[str], mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if creates_in_locked(path, dir_fd):
            raise refused(path)
        make_folder(path, mode, dir_fd=dir_fd)

    def make(path: Path) -> None:
        folder = path.is_dir()
        path.chmod(0o555 if folder else 0)
        locked.add(path.resolve())
        if os.geteuid() != 0:
            return
        if folder:
            monkeypatch.setattr(os, "open", guarded_open)
            monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        else:
            monkeypatch.setattr(Path, "read_bytes", guarded_read)

    return make


@pytest.fixture(scope="session")
def lfw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LFW Part Labels release, unpacked into folders."""
    return make_lfw_dataset(tmp_path_factory.mktemp("lfw-folders"))


@pytest.fixture(scope="session")
def lfw_archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LFW Part Labels release as the authors' two .tgz archives plus split files."""
    return make_lfw_dataset(tmp_path_factory.mktemp("lfw-archives"), archives=True)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained but valid tiny checkpoint: enough to exercise every code path quickly."""
    torch.manual_seed(0)
    config = UNetConfig(width=4, depth=2, stem_stride=1)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    save_checkpoint(path, Checkpoint(config=config, state_dict=UNet(config).state_dict(), input_size=64))
    return path


@pytest.fixture(scope="session")
def person_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny checkpoint with a person output beside LFW's classes (subjects head and
    person), as the shipped person model has: bench_person and the server's subject need it."""
    torch.manual_seed(0)
    config = UNetConfig(outputs=4, width=4, depth=2, stem_stride=1)
    checkpoint = Checkpoint(
        config=config, state_dict=UNet(config).state_dict(), input_size=64, subjects=("head", "person")
    )
    path = tmp_path_factory.mktemp("weights") / "person.pt"
    save_checkpoint(path, checkpoint)
    return path


@pytest.fixture(scope="session")
def no_subject_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint that calls every pixel background: blur must blur the whole photo."""
    config = UNetConfig(width=4, depth=2, stem_stride=1)
    model = UNet(config)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([6.0, 0.0, 0.0]))
    path = tmp_path_factory.mktemp("weights") / "no-subject.pt"
    save_checkpoint(path, Checkpoint(config=config, state_dict=model.state_dict(), input_size=64))
    return path


@pytest.fixture(scope="session")
def serve_models(
    tiny_weights: Path, person_weights: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The tiny checkpoints exported to ONNX once for the session, for `blurcli serve`'s tests:
    'tiny' segments the head only, 'person' the person and the head."""
    from blurcli.export import cached_export

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLURCLI_HOME", str(tmp_path_factory.mktemp("serve-home")))
        return {"tiny": cached_export(tiny_weights), "person": cached_export(person_weights)}
