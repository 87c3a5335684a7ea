"""Locating the JSON resources milco-os installs into clusters (``mappings/``, ``ingest_pipelines/``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from milco_os.errors import MilcoOsError

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
INSTALLED_ROOT = Path(sys.prefix) / "share" / "milco-os"


def resource_dir(name: str) -> Path:
    """``name`` in a source checkout, else where the wheel installs it (``<prefix>/share/milco-os``)."""
    for root in (CHECKOUT_ROOT, INSTALLED_ROOT):
        if (root / name).is_dir():
            return root / name
    raise MilcoOsError(f"milco-os cannot find its '{name}' folder (looked in {CHECKOUT_ROOT} and {INSTALLED_ROOT}).",
                       hint="reinstall milco-os.")


def load_json(folder: str, name: str) -> dict:
    return json.loads((resource_dir(folder) / name).read_text(encoding="utf-8"))
