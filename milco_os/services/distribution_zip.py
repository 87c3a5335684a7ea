"""Assembling a distribution home from its zip once: extracted, completed, stamped, then moved into place."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

READY_MARKER = ".milco-os-ready"


def extract_zip(archive: Path, destination: Path) -> None:
    """Extract ``archive`` keeping the Unix permission bits (``zipfile`` alone drops them)."""
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            extracted = Path(bundle.extract(info, destination))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)


def assemble_zip(fetch: Callable[[], Path], home: Path, stamp: str,
                 complete: Callable[[Path, Path], None]) -> Path:
    """``home`` from the distribution zip ``fetch`` provides, once: extracted to scratch, completed by
    ``complete(extracted, scratch)``, stamped, then moved into place (never left half-built)."""
    marker = home / READY_MARKER
    if marker.is_file() and marker.read_text().strip() == stamp:
        return home
    archive = fetch()
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=".extract-") as scratch:
        extract_zip(archive, Path(scratch))
        extracted = Path(scratch) / home.name
        complete(extracted, Path(scratch))
        (extracted / READY_MARKER).write_text(stamp + "\n")
        if home.exists():
            shutil.rmtree(home)
        extracted.rename(home)
    return home
