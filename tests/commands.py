"""The milco-os command line as the tests run it: in a process of its own, on this checkout's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Mapping


def milco_os_command(*args: str) -> list[str]:
    """The argument vector of ``milco-os *args`` (for ``subprocess.Popen`` where a test drives the process)."""
    return [sys.executable, "-m", "milco_os", *args]


def run_cli(*args: str, timeout: float = 600, env: Mapping[str, str] | None = None,
            **options: Any) -> subprocess.CompletedProcess:
    """``milco-os *args`` run to its end, its output captured as text.

    ``env`` holds variables set on top of this process's environment (the rest is inherited);
    ``options`` go to ``subprocess.run`` as they are (``cwd``, ``check``, ``input``...).
    """
    environment = None if env is None else {**os.environ, **env}
    return subprocess.run(milco_os_command(*args), capture_output=True, text=True, timeout=timeout,
                          env=environment, **options)
