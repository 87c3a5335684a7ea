"""Shared pieces of the benchmark scripts: a local node, synthetic multilingual corpora, tables."""

from __future__ import annotations

import platform
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from milco_os.services.opensearch_node import NodeSettings, OpenSearchNode
from milco_os.services.ports import free_port
from milco_os.services.service_user import service_user, services_root
from milco_os.testing import MULTILINGUAL_SAMPLE


@contextmanager
def local_node(url: str | None) -> Iterator[str]:
    """``url`` when given, else a fresh local node that is removed afterwards."""
    if url:
        yield url
        return
    runtime = Path(tempfile.mkdtemp(prefix="bench-", dir=services_root(service_user())))
    node = OpenSearchNode(runtime, NodeSettings(http_port=free_port()))
    node.start()
    try:
        yield node.url
    finally:
        node.stop()
        shutil.rmtree(runtime, ignore_errors=True)


def synthetic_corpus(count: int, seed: int = 1, max_sentences: int = 6) -> list[dict]:
    """Documents of 1..max_sentences sentences drawn from the multilingual sample."""
    rng = random.Random(seed)
    return [{"id": f"b{n}", "text": " ".join(rng.choice(MULTILINGUAL_SAMPLE)
                                             for _ in range(rng.randint(1, max_sentences)))}
            for n in range(count)]


def synthetic_queries(count: int, seed: int = 2) -> list[str]:
    rng = random.Random(seed)
    queries = []
    for _ in range(count):
        words = rng.choice(MULTILINGUAL_SAMPLE).split()
        start = rng.randrange(len(words))
        queries.append(" ".join(words[start : start + rng.randint(1, 4)]))
    return queries


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
