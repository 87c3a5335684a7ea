"""Shared pieces of the benchmark scripts: a local node, synthetic multilingual corpora, tables."""

from __future__ import annotations

import json
import platform
import random
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from milco_os.services.opensearch_node import NodeSettings, SearchNode
from milco_os.services.ports import free_port
from milco_os.services.service_user import service_user, services_root


@contextmanager
def local_node(url: str | None) -> Iterator[str]:
    """``url`` when given, else a fresh local node that is removed afterwards."""
    if url:
        yield url
        return
    runtime = Path(tempfile.mkdtemp(prefix="bench-", dir=services_root(service_user())))
    node = SearchNode(runtime, NodeSettings(http_port=free_port()))
    node.start()
    try:
        yield node.url
    finally:
        node.stop()
        shutil.rmtree(runtime, ignore_errors=True)


SAMPLE = Path(__file__).resolve().parent / "data" / "sample"


def sample_passages() -> list[str]:
    """The texts of the sample multilingual corpus (bench/data/sample/corpus.jsonl)."""
    return [json.loads(line)["text"] for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]


def synthetic_corpus(count: int, seed: int = 1, max_sentences: int = 6) -> list[dict]:
    """Documents of 1..max_sentences passages of the sample corpus, to reach any size."""
    rng = random.Random(seed)
    passages = sample_passages()
    return [{"id": f"b{n}", "text": " ".join(rng.choice(passages) for _ in range(rng.randint(1, max_sentences)))}
            for n in range(count)]


def synthetic_queries(count: int, seed: int = 2) -> list[str]:
    """The sample corpus's queries, cycled to ``count`` in a seeded order."""
    lines = (SAMPLE / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    random.Random(seed).shuffle(queries)
    return [queries[n % len(queries)] for n in range(count)]


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
