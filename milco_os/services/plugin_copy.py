"""A copy of a distribution with plugins installed by its own ``opensearch-plugin`` (made once, then reused)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from milco_os.errors import ServiceError
from milco_os.services.java import JavaHome

READY_MARKER = ".milco-os-plugins-ready"


def with_plugins(home: Path, flavour: str, archives: list[Path], java: JavaHome) -> Path:
    """``<services>/opensearch-<flavour>/<home name>``: a copy of ``home`` with ``archives`` installed in order."""
    target = home.parent.parent / f"opensearch-{flavour}" / home.name
    wanted = "".join(f"{archive.name}\n" for archive in archives)
    marker = target / READY_MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JAVA_HOME": str(java.path), "OPENSEARCH_JAVA_HOME": str(java.path)}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".install-") as scratch:
        staged = Path(scratch) / home.name
        shutil.copytree(home, staged, symlinks=True)
        for archive in archives:
            result = subprocess.run([str(staged / "bin" / "opensearch-plugin"), "install", "--batch",
                                     archive.as_uri()], env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise ServiceError(f"opensearch-plugin could not install {archive.name} into {home.name}.",
                                   log_tail=(result.stdout + result.stderr)[-3000:])
        (staged / READY_MARKER).write_text(wanted)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target
