"""Where blurcli keeps downloaded weights and unpacked datasets: one root, one environment variable."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "BLURCLI_HOME"


def data_home() -> Path:
    """Root for downloaded weights: $BLURCLI_HOME, else the platform's user data dir."""
    override = os.environ.get(HOME_ENV)
    return Path(override) if override else Path(platformdirs.user_data_dir("blurcli"))


def cache_home() -> Path:
    """Root for re-creatable files (unpacked archives): $BLURCLI_HOME/cache, else the user cache dir."""
    override = os.environ.get(HOME_ENV)
    return Path(override) / "cache" if override else Path(platformdirs.user_cache_dir("blurcli"))
