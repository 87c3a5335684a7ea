"""Where milco-os keeps downloads and the state of the services it starts."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MILCO_OS_CACHE"


def cache_dir() -> Path:
    """The cache root: ``$MILCO_OS_CACHE``, else ``$XDG_CACHE_HOME/milco-os``, else ``~/.cache/milco-os``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        root = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg) if xdg else Path.home() / ".cache") / "milco-os"
    root = root.expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root
