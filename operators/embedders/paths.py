"""Where embedders keep derived files (distilled vectors, embedding caches)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "LABELFLOW_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$LABELFLOW_CACHE_DIR`` if set, else ``~/.cache/labelflow``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "labelflow"
