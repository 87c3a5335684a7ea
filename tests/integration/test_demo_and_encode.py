"""The encode command and the end-to-end demo path against a real node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os import demo
from milco_os.model import MilcoEncoder

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[2] / "bench" / "data" / "demo_corpus.jsonl"


def test_encode_command_prints_named_terms_in_input_order(tiny_checkpoint: Path) -> None:
    texts = ["Berlin ist die Hauptstadt", "東京タワー", ""]
    result = subprocess.run(
        [sys.executable, "-m", "milco_os", "encode", "--model", str(tiny_checkpoint), "--prune", "topk:5", *texts],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == texts
    expected = MilcoEncoder.from_pretrained(tiny_checkpoint).encode(texts, prune="topk:5")
    encoder = MilcoEncoder.from_pretrained(tiny_checkpoint)
    for line, vector in zip(lines, expected):
        assert list(line["terms"]) == list(vector.terms(encoder.vocabulary))
        assert list(line["terms"].values()) == sorted(line["terms"].values(), reverse=True)
    assert lines[2]["terms"] == {}


def test_encode_command_refuses_a_bad_prune_spec(tiny_checkpoint: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "milco_os", "encode", "--model", str(tiny_checkpoint),
                             "--prune", "topk:0", "x"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "topk:0 out of range" in result.stderr


def test_demo_ranking_equals_the_exact_dot_product(opensearch: OpenSearch, index_name: str,
                                                   tiny_encoder: MilcoEncoder) -> None:
    documents = demo.read_jsonl(CORPUS)
    demo.create_index(opensearch, index_name)
    assert demo.index_documents(opensearch, index_name, documents, tiny_encoder, "topk:64") == len(documents)
    doc_vectors = dict(zip((d["id"] for d in documents),
                           tiny_encoder.encode([d["text"] for d in documents], prune="topk:64")))
    for query in demo.DEMO_QUERIES:
        hits = demo.search(opensearch, index_name, tiny_encoder, query, "topk:64", size=5)
        query_vector = tiny_encoder.encode([query], prune="topk:64")[0]
        exact = sorted(((query_vector.dot(v), doc_id) for doc_id, v in doc_vectors.items()), reverse=True)
        # rank_features keeps 9 significant bits, so only near-ties may swap places.
        assert query_vector.dot(doc_vectors[hits[0].doc_id]) >= exact[0][0] * (1 - 1e-2)
        for hit in hits:
            assert hit.score == pytest.approx(query_vector.dot(doc_vectors[hit.doc_id]), rel=5e-3)
            assert all(name.startswith(("e_", "m_")) for name in hit.matched)
