"""Fixtures for the fault, bad-input and security matrix: dedicated real services, and the matrix rows.

Each test records one row per case (documents sent, stored, dead-lettered, left for a
re-run, lost, duplicated, exit codes). With ``MILCO_OS_RELIABILITY_MATRIX=FILE`` the rows
are written there as JSON at the end of the session; ``scripts/reliability_matrix.py``
runs this folder that way and renders ``docs/RELIABILITY.md`` from them.
"""

from __future__ import annotations

import json
import os
import uuid
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

import pytest

from milco_os.services.opensearch_security import SECURE_VERSION, BasicAuthUser
from milco_os.services.temporary_node import temporary_node
from tests.reliability.harness import NodeHandle, Row

MATRIX_ENV = "MILCO_OS_RELIABILITY_MATRIX"
ROWS: list[dict] = []
ADMIN = BasicAuthUser("milco-admin", f"Adm1n-{uuid.uuid4().hex}")
READER = BasicAuthUser("milco-reader", f"Read3r-{uuid.uuid4().hex}", backend_role="readall")
# A user whose permissions the tests grant and revoke (through the security API) while a job runs.
WRITER = BasicAuthUser("milco-writer", f"Wr1ter-{uuid.uuid4().hex}", backend_role="milco-writer")


@pytest.fixture
def record() -> Callable[[Row], None]:
    """Adds a row to the matrix; every row must account for every document."""

    def add(row: Row) -> None:
        assert row.lost == 0, f"{row.lost} document(s) unaccounted for in: {row.case}"
        ROWS.append({**asdict(row), "lost": row.lost})

    return add


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get(MATRIX_ENV)
    if target and ROWS:
        Path(target).write_text(json.dumps(ROWS, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


@pytest.fixture
def own_node() -> Iterator[Callable[..., NodeHandle]]:
    """Starts dedicated nodes (``own_node(extra={...})``, arguments of ``temporary_node``); removes them after
    the test."""
    with ExitStack() as nodes:
        yield lambda **settings: NodeHandle(nodes.enter_context(temporary_node(**settings)))


@pytest.fixture(scope="session")
def secure_node() -> Iterator[NodeHandle]:
    """A node with the security plugin: https with its own CA, basic auth for an admin and a read-only user."""
    with temporary_node(version=SECURE_VERSION, users=(ADMIN, READER, WRITER)) as node:
        yield NodeHandle(node)
