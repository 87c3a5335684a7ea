"""Locating the folders milco-os installs into clusters and servers (``mappings/``, ``ingest_pipelines/``,
``opensearch_ml/``, ``triton_models/``): in a source checkout, or where the installed wheel put them."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from milco_os.errors import MilcoOsError

CHECKOUT_ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTION = "milco-os"
# The wheel installs the folders as data files, under <scheme data>/share/milco-os/.
INSTALLED_PARTS = ("share", "milco-os")


def installed_resource_dir(name: str) -> Path | None:
    """``name`` as the installed distribution recorded it (any install scheme: a venv, ``--user``, a prefix)."""
    try:
        files = metadata.distribution(DISTRIBUTION).files or []
    except metadata.PackageNotFoundError:
        return None
    marker = (*INSTALLED_PARTS, name)
    for file in files:
        parts = file.parts
        for start in range(len(parts) - len(marker)):
            if parts[start:start + len(marker)] == marker:
                folder = Path(str(file.locate())).parents[len(parts) - start - len(marker) - 1]
                if folder.is_dir():
                    return folder.resolve()
    return None


def resource_dir(name: str) -> Path:
    """``name`` in a source checkout, else where the installed wheel put it."""
    if (CHECKOUT_ROOT / name).is_dir():
        return CHECKOUT_ROOT / name
    installed = installed_resource_dir(name)
    if installed is not None:
        return installed
    raise MilcoOsError(f"milco-os cannot find its '{name}' folder (not in {CHECKOUT_ROOT}, and the installed "
                       f"'{DISTRIBUTION}' distribution records no {'/'.join(INSTALLED_PARTS)}/{name}).",
                       hint="reinstall milco-os from its wheel.")


def load_json(folder: str, name: str) -> dict:
    return json.loads((resource_dir(folder) / name).read_text(encoding="utf-8"))
