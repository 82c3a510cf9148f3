"""Shared fixtures: tiny synthetic LFW datasets and an isolated blurcli home."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lfw_fake import make_lfw_dataset

REAL_LFW = Path(__file__).resolve().parents[2] / "shared" / "data" / "lfw-parts"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every test's cache and downloads out of the user's real data dir."""
    home = tmp_path_factory.mktemp("blurcli-home")
    monkeypatch.setenv("BLURCLI_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def lfw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LFW Part Labels release, unpacked into folders."""
    return make_lfw_dataset(tmp_path_factory.mktemp("lfw-folders"))


@pytest.fixture(scope="session")
def lfw_archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LFW Part Labels release as the authors' two .tgz archives plus split files."""
    return make_lfw_dataset(tmp_path_factory.mktemp("lfw-archives"), archives=True)
