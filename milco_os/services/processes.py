"""Starting, waiting for and stopping service processes without ever hanging."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Callable

from milco_os.errors import ServiceError

LOG_TAIL_LINES = 50


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).rstrip()
    except FileNotFoundError:
        return ""


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log: Path | None = None,
    interval: float = 0.5,
) -> float:
    """Poll ``ready`` until it is true; return the seconds waited.

    Fails fast when ``alive`` says the process died, and after ``timeout`` seconds;
    both errors carry the tail of ``log``.
    """
    started = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - started
        if alive is not None and not alive():
            raise ServiceError(
                f"The {what} exited before it became ready.",
                hint="read the log lines below for the cause.",
                log_tail=log_tail(log) if log else None,
            )
        if time.monotonic() - started > timeout:
            raise ServiceError(
                f"The {what} did not become ready within {timeout:.0f} s.",
                hint="read the log lines below; raise the timeout if the machine is just slow.",
                log_tail=log_tail(log) if log else None,
            )
        time.sleep(interval)


def terminate_process_group(pid: int, *, grace: float) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``grace`` seconds.

    Returns True when the process had to be killed.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def stop_popen(process: subprocess.Popen, *, grace: float, first_signal: int = signal.SIGTERM) -> int:
    """Stop a child process: ``first_signal``, then SIGKILL after ``grace`` seconds; returns its exit code."""
    if process.poll() is None:
        process.send_signal(first_signal)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout=30)
