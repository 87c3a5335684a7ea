"""Waiting on conditions with a deadline, for tests that race other processes (never a fixed sleep)."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Any, Callable, TypeVar

import pytest

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.1,
             detail: Callable[[], object] | None = None, process: subprocess.Popen | None = None) -> T:
    """Poll ``condition`` until it returns a truthy value and return that value.

    Fails the test after ``timeout`` seconds, naming ``what`` was awaited and, when given,
    what ``detail()`` says about the last state seen. ``process``, when given, is the process
    that is to bring the condition about: once it has exited the test fails at once, with its
    exit status and what it wrote on standard error (when that is a pipe).
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            stderr = process.stderr.read() if process.stderr is not None else ""
            pytest.fail(f"the process exited (status {process.returncode}) while waiting for {what}; "
                        f"its stderr: {stderr}", pytrace=False)
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = f"; last seen: {detail()}" if detail is not None else ""
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{seen}", pytrace=False)
        time.sleep(interval)


def writes_in_flight(client: Any, index: str) -> list[str]:
    """The bulk and write tasks running on the cluster that touch ``index`` (or do not say which index)."""
    listing = client.tasks.list(actions="*bulk*,*write*", detailed=True)
    tasks = [task for node in listing.get("nodes", {}).values() for task in node.get("tasks", {}).values()]
    return [f"{task['action']} {task.get('description', '')}".strip() for task in tasks
            if not task.get("description") or index in task["description"]]


def settled_count(client: Any, index: str, *, timeout: float = 120, stable_polls: int = 3,
                  interval: float = 0.5) -> int:
    """The document count of ``index`` once writes to it have stopped.

    A writer killed mid-request leaves its last bulk request to the server, which may
    still apply it: wait until no write task touches the index and ``stable_polls``
    refreshed counts in a row, ``interval`` seconds apart, agree.
    """
    counts: list[int] = []
    busy: list[str] = []

    def quiet() -> bool:
        busy[:] = writes_in_flight(client, index)
        client.indices.refresh(index=index)
        count = client.count(index=index)["count"]
        if busy:
            counts.clear()
            return False
        counts.append(count)
        return len(counts) >= stable_polls and len(set(counts[-stable_polls:])) == 1

    wait_for(quiet, timeout=timeout, interval=interval, what=f"writes to {index} to stop",
             detail=lambda: f"write tasks {busy}, counts {counts[-stable_polls:]}")
    return counts[-1]


def wait_for_connection_attempt(port: int, *, timeout: float, what: str, host: str = "127.0.0.1",
                                alive: Callable[[], bool] | None = None) -> None:
    """Listen on ``host:port`` (where a stopped service listened) until a client connects, then hang up on it.

    Proves that a client came back to the service while it was down; the port is free again on return.
    Fails after ``timeout`` seconds, or as soon as ``alive`` says the client has exited.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen()
        listener.settimeout(0.5)
        while True:
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                if alive is not None and not alive():
                    pytest.fail(f"the client exited while waiting for {what}", pytrace=False)
                if time.monotonic() >= deadline:
                    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
                continue
            connection.close()
            return
