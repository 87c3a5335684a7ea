"""Shared pieces of the benchmark scripts: a local node, synthetic multilingual corpora, tables."""

from __future__ import annotations

import json
import platform
import random
from contextlib import contextmanager
from typing import Iterator

import torch

from milco_os.sample_corpus import sample_dir
from milco_os.services.temporary_node import temporary_node


@contextmanager
def local_node(url: str | None) -> Iterator[str]:
    """``url`` when given, else a fresh local node that is removed afterwards."""
    if url:
        yield url
        return
    with temporary_node() as node:
        yield node.url


def sample_passages() -> list[str]:
    """The texts of the sample multilingual corpus shipped with the package."""
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def synthetic_corpus(count: int, seed: int = 1, max_sentences: int = 6) -> list[dict]:
    """Documents of 1..max_sentences passages of the sample corpus, to reach any size."""
    rng = random.Random(seed)
    passages = sample_passages()
    return [{"id": f"b{n}", "text": " ".join(rng.choice(passages) for _ in range(rng.randint(1, max_sentences)))}
            for n in range(count)]


def synthetic_queries(count: int, seed: int = 2) -> list[str]:
    """The sample corpus's queries, cycled to ``count`` in a seeded order."""
    lines = (sample_dir() / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    random.Random(seed).shuffle(queries)
    return [queries[n % len(queries)] for n in range(count)]


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
