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
    """Make a file unreadable: chmod 0, and, where the tests run as root (CI does), whom chmod does
    not stop, a read of it fails the same way (EACCES), so the error path runs there too."""
    locked: set[Path] = set()
    read_bytes = Path.read_bytes

    def guarded(self: Path) -> bytes:
        if self.resolve() in locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return read_bytes(self)

    if os.geteuid() == 0:
        monkeypatch.setattr(Path, "read_bytes", guarded)

    def make(path: Path) -> None:
        path.chmod(0)
        locked.add(path.resolve())

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
