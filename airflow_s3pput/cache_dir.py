"""Where s3pput keeps what it remembers between runs on this machine (the upload journal)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$S3PPUT_CACHE_DIR``, else the platform's user cache directory (``$XDG_CACHE_HOME``,
    ``~/.cache``) + ``s3pput``."""
    override = os.environ.get("S3PPUT_CACHE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "s3pput"
