"""What the reliability tests share: the CLI in a subprocess, a test corpus, the index audit, a restartable node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from opensearchpy import OpenSearch, helpers

from milco_os.index.fields import EN_FIELD, M_FIELD, vector_fields
from milco_os.model import MilcoEncoder
from milco_os.services.search_node import SearchNode
from milco_os.model.tiny import MULTILINGUAL_SAMPLE


@dataclass
class Row:
    """One case of the matrix; ``lost`` is what is neither stored, dead-lettered, reported as left to do, nor
    superseded by a later document with the same id (reported as a duplicate)."""

    area: str
    case: str
    interface: str
    sent: int
    stored: int
    dead_lettered: int
    left_for_rerun: int
    duplicated: int
    exit_codes: str
    note: str = ""
    superseded: int = 0

    @property
    def lost(self) -> int:
        return self.sent - self.stored - self.dead_lettered - self.left_for_rerun - self.superseded


def milco_os(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in its own process."""
    return subprocess.run([sys.executable, "-m", "milco_os", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def summary_of(stderr: str) -> dict:
    """The JSON summary line an ingest prints on stderr."""
    return next(json.loads(line) for line in reversed(stderr.splitlines()) if line.startswith("{"))


def corpus(count: int, prefix: str = "doc") -> list[dict]:
    """``count`` short multilingual documents with distinct ids and texts."""
    return [{"id": f"{prefix}-{i}", "text": f"{MULTILINGUAL_SAMPLE[i % len(MULTILINGUAL_SAMPLE)]} #{i}", "n": i}
            for i in range(count)]


def write_jsonl(path: Path, documents: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return path


@dataclass
class Audit:
    """What an index holds compared with what was sent."""

    stored: int
    missing: list[str]
    unexpected: list[str]
    duplicated: int
    wrong_vectors: list[str]

    def problems(self, count: int) -> tuple:
        """Empty when exactly ``count`` expected documents are stored, each once, with the right vector."""
        found = (self.stored, self.missing, self.unexpected, self.duplicated, self.wrong_vectors)
        return () if found == (count, [], [], 0, []) else found


def expected_fields(encoder: MilcoEncoder, documents: list[dict], prune: str = "none") -> dict[str, dict]:
    vectors = encoder.encode([d["text"] for d in documents], prune=prune)
    return {d["id"]: vector_fields(v, encoder.vocabulary) for d, v in zip(documents, vectors)}


def audit(client: OpenSearch, index: str, expected: dict[str, dict], rel: float = 1e-4) -> Audit:
    """Every stored document against the expected ids and vectors (exact ids, weights within ``rel``)."""
    client.indices.refresh(index=index)
    hits = list(helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=500))
    ids = [hit["_id"] for hit in hits]
    source_ids = [hit["_source"]["id"] for hit in hits if hit["_source"].get("id") is not None]
    duplicated = (len(ids) - len(set(ids))) + (len(source_ids) - len(set(source_ids)))
    wrong = []
    for hit in hits:
        want = expected.get(hit["_id"])
        if want is None:
            continue
        for field in (EN_FIELD, M_FIELD):
            got, wanted = hit["_source"].get(field) or {}, want.get(field) or {}
            if got.keys() != wanted.keys() or any(abs(got[k] - wanted[k]) > rel * max(1.0, abs(wanted[k]))
                                                  for k in wanted):
                wrong.append(hit["_id"])
                break
    return Audit(stored=len(set(ids) & set(expected)), missing=sorted(set(expected) - set(ids)),
                 unexpected=sorted(set(ids) - set(expected)), duplicated=duplicated, wrong_vectors=wrong)


class NodeHandle:
    """A dedicated node (see ``temporary_node``) that tests may stop and start again on the same port and data."""

    def __init__(self, node: SearchNode) -> None:
        self.node = node

    @property
    def url(self) -> str:
        return self.node.url

    def client(self, **options: object) -> OpenSearch:
        return OpenSearch(hosts=[self.url], timeout=60, **{**self.node.client_options(), **options})

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()
