"""The user cache, where datasets are found or downloaded and image folders' stores are kept (no torch here)."""

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/vae-tui, or ~/.cache/vae-tui."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vae-tui"
