"""Where s3pput keeps what it remembers between runs on this machine: the digest record and the
journal of unfinished multipart uploads."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "S3PPUT_CACHE_DIR"


def cache_dir(configured: str | None = None) -> Path:
    """``configured`` (``--cache-dir``), else ``$S3PPUT_CACHE_DIR``, else the platform's user
    cache directory (``$XDG_CACHE_HOME``, ``~/.cache``) + ``s3pput``."""
    chosen = configured or os.environ.get(CACHE_DIR_ENV)
    if chosen:
        return Path(chosen).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "s3pput"
