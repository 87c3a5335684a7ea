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


@torch.inference_mode()
def dense_encode(encoder, texts: list[str], batch_size: int, *, pad_to_multiple_of: int | None = None,
                 autocast: torch.dtype | None = None) -> list:
    """The usual way to run MILCO, a baseline: fixed-size batches in input order, the full
    ``[batch, seq, 30522]`` logits and dense 30,522 + m_vocab rows copied to the host."""
    network, device, outputs = encoder.network, encoder.device, []
    for start in range(0, len(texts), batch_size):
        batch = encoder.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                  max_length=encoder.max_positions, pad_to_multiple_of=pad_to_multiple_of,
                                  return_tensors="pt")
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        with torch.autocast(device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
            states = network.backbone_states(ids, mask)
            logits = network.en_logits(network.en_features(states)) * mask.unsqueeze(-1)
            english = torch.log1p(torch.relu(logits.max(dim=1).values)).float()
            echo = network.echo_weights(states, mask.to(states.dtype)).float()
        source = torch.zeros((len(ids), network.m_vocab_size), device=device).scatter_add_(1, ids, echo)
        outputs.extend(torch.cat([english, source], dim=1).cpu().numpy())
    return outputs


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
