"""Loopback port helpers."""

from __future__ import annotations

import socket

from milco_os.errors import ServiceError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` and a server could bind it.

    SO_REUSEADDR, as servers set it, so connections lingering in TIME_WAIT do not count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, what: str, host: str = LOOPBACK) -> None:
    """Raise a clear error when ``port`` is already taken."""
    if not is_port_free(port, host):
        raise ServiceError(
            f"Port {port} on {host} is already in use, so the {what} cannot listen there.",
            hint=f"stop whatever listens on {host}:{port} or choose another port.",
        )
