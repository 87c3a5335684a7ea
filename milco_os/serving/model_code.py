"""The milco-os code an exported Triton model runs, copied into the model's version folder.

The modules are those the Triton entry point imports, followed through every ``milco_os``
import (with their packages' ``__init__``), plus the data files they read. A repository
written this way needs no milco-os installed where the server runs: only the packages of
``requirements.txt``.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = "milco_os"
ENTRY_POINT = "milco_os.serving.triton_entry"
# Files read at run time beside the modules (the bundled English vocabulary).
DATA_FILES = ("model/data/bert-base-uncased-vocab.txt",)
REQUIREMENTS = Path(__file__).with_name("model_requirements.txt")


PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def module_file(name: str) -> Path | None:
    """The source file of ``milco_os`` module ``name`` (a package's ``__init__.py``), or None when there is none.

    Found on disk, not imported: importing the model package would load torch.
    """
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE_ROOT / relative / "__init__.py", (PACKAGE_ROOT / relative).with_suffix(".py")):
        if name.split(".")[0] == PACKAGE and candidate.is_file():
            return candidate
    return None


def imported_modules(source: Path) -> set[str]:
    """The ``milco_os`` modules ``source`` imports anywhere (at the top or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from package import module`` names a module too.
            names.update(f"{node.module}.{alias.name}" for alias in node.names
                         if module_file(f"{node.module}.{alias.name}") is not None)
    return {name for name in names if name == PACKAGE or name.startswith(PACKAGE + ".")}


def runtime_modules(entry: str = ENTRY_POINT) -> dict[str, Path]:
    """Every ``milco_os`` module ``entry`` needs to run, with its packages, by dotted name."""
    found: dict[str, Path] = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = module_file(name)
        if path is None:
            raise ImportError(f"{name} (imported by the Triton model code) cannot be found")
        found[name] = path
        parts = name.split(".")
        pending.extend(".".join(parts[:end]) for end in range(1, len(parts)))
        pending.extend(imported_modules(path))
    return found


def copy_runtime_code(destination: Path) -> list[Path]:
    """Write the runtime modules and data files under ``destination/milco_os/``; returns the files written."""
    target_root = destination / PACKAGE
    if target_root.exists():
        shutil.rmtree(target_root)
    written = []
    sources = [*runtime_modules().values(), *(PACKAGE_ROOT / name for name in DATA_FILES)]
    for source in sorted(sources):
        target = target_root / source.relative_to(PACKAGE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        written.append(target)
    return written

