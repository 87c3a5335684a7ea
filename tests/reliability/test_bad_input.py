"""Bad input through the CLI and the Python API: each case refused or stored as documented, nothing lost.

The CLI case is one file holding every kind of bad line among good ones; the audit
checks the exact ids stored and their vectors, the dead-letter file the exact
(line, id, field) of each refusal, and stderr one line naming each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from opensearchpy import OpenSearch

from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import document_id
from milco_os.pipeline.sources import DictSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.sparse import SparseVector
from tests.commands import run_cli
from tests.reliability.harness import Row, audit, expected_fields, summary_of

pytestmark = pytest.mark.integration

HUGE_TEXT = "multilingual sparse retrieval " * 175_000  # 5.25 MB


def bad_input_lines() -> tuple[list[bytes], list[dict], dict[int, tuple[str | None, str | None, str]]]:
    """File lines; the documents that must be stored; line -> (id, field, reason fragment) of each refusal."""
    stored = [{"id": f"ok-{i}", "text": f"good document number {i} about Berlin"} for i in range(5)]
    stored += [{"id": "empty", "text": ""}, {"id": "blank", "text": " \n\t "}, {"id": "huge", "text": HUGE_TEXT},
               {"text": "a document without an id"}]
    duplicate_first = {"id": "dup", "text": "first version"}
    duplicate_last = {"id": "dup", "text": "second version, the one that wins"}
    lines = [json.dumps(d).encode() for d in stored[:5]]
    refusals: dict[int, tuple[str | None, str | None, str]] = {}

    def add_refusal(raw: bytes, doc_id: str | None, field: str | None, reason: str) -> None:
        lines.append(raw)
        refusals[len(lines)] = (doc_id, field, reason)

    add_refusal(b'{"id": "broken", "text": "unterminated', None, None, "is not valid JSON")
    add_refusal('{"id": "latin1", "text": "café"}'.encode("latin-1"), None, None, "is not valid UTF-8")
    add_refusal(b"[1, 2, 3]", None, None, "is a JSON list, not an object")
    add_refusal(b'{"id": "number", "text": 42}', "number", "text", "field 'text' is a int")
    add_refusal(b'{"id": "nested", "text": {"en": "hello"}}', "nested", "text", "field 'text' is a dict")
    add_refusal(b'{"id": "bad-year", "text": "a fine text", "year": "not a year"}', "bad-year", "year",
                "the cluster refused it")
    lines += [json.dumps(duplicate_first).encode()]
    lines += [json.dumps(d, ensure_ascii=False).encode() for d in stored[5:]]
    lines += [json.dumps(duplicate_last).encode()]
    return lines, stored + [duplicate_last], refusals


def test_every_kind_of_bad_line_through_the_cli(opensearch: OpenSearch, opensearch_url: str, index_name: str,
                                                tiny_checkpoint: Path, tiny_encoder: MilcoEncoder, tmp_path: Path,
                                                record) -> None:
    lines, must_store, refusals = bad_input_lines()
    source = tmp_path / "bad.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    dead = tmp_path / "dead.jsonl"
    common = ("--url", opensearch_url, "--index", index_name)
    assert run_cli("setup", *common, "--replicas", "0").returncode == 0
    opensearch.indices.put_mapping(index=index_name, body={"properties": {"year": {"type": "long"}}})

    result = run_cli("ingest", *common, "--model", str(tiny_checkpoint), "--dead-letter", str(dead), str(source))

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    summary = summary_of(result.stderr)
    assert (summary["read"], summary["failed"], summary["duplicate_ids"], summary["no_text"]) == \
        (len(lines), len(refusals), 1, 2)
    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert {entry["line"]: (entry["id"], entry["field"]) for entry in entries} == \
        {line: (doc_id, field) for line, (doc_id, field, _) in refusals.items()}
    for entry in entries:
        fragment = refusals[entry["line"]][2]
        assert fragment in entry["reason"]
        assert any(fragment in line and f"line {entry['line']}" in line for line in result.stderr.splitlines())
    assert "document dup (line" in result.stderr and "the last one wins" in result.stderr

    expected = expected_fields(tiny_encoder, [{**d, "id": d.get("id") or document_id(d, "id")} for d in must_store])
    stored = audit(opensearch, index_name, expected)
    assert not stored.problems(len(expected))
    assert opensearch.get(index=index_name, id="dup")["_source"]["text"] == must_store[-1]["text"]
    huge = opensearch.get(index=index_name, id="huge", _source_includes=["milco_en"])["_source"]
    assert huge["milco_en"], "a 5 MB text is truncated to the model's length and encoded, not refused"
    record(Row("bad input", "invalid JSON, invalid UTF-8, a JSON list, non-string and nested text, a value the "
               "mapping refuses; among good, empty, blank, 5 MB, id-less and duplicate-id documents", "CLI",
               len(lines), stored.stored, len(entries), 0, stored.duplicated, "1",
               "duplicate id: last wins, reported; missing id: content-hash id; empty/blank: stored without terms",
               superseded=summary["duplicate_ids"]))


class FaultyEncoder(SparseEncoder):
    """The tiny encoder, except that texts naming a fault get a weight of that kind."""

    FAULTS = {"nan": np.nan, "inf": np.inf, "negative": -1.0, "zero": 0.0}

    def __init__(self, encoder: MilcoEncoder) -> None:
        self.encoder = encoder
        self.vocabulary = encoder.vocabulary
        self.name = "faulty"

    def encode(self, texts, **options) -> list[SparseVector]:
        vectors = self.encoder.encode(texts, **options)
        for position, text in enumerate(texts):
            fault = next((value for word, value in self.FAULTS.items() if text.startswith(word)), None)
            if fault is not None:
                vector = vectors[position]
                weights = vector.en_weights.copy()
                weights[0] = fault
                vectors[position] = SparseVector(vector.en_ids, weights, vector.m_ids, vector.m_weights)
        return vectors


def test_python_api_refuses_non_dicts_and_invalid_weights_before_the_cluster(
        opensearch: OpenSearch, index_name: str, tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    good = [{"id": f"good-{i}", "text": f"a good text {i}"} for i in range(6)]
    faulty = [{"id": word, "text": f"{word} weight from a custom encoder"} for word in FaultyEncoder.FAULTS]
    documents = good[:3] + faulty + ["not a dict", 17] + good[3:]
    opensearch.indices.create(index=index_name, body={"mappings": {"properties": {
        "milco_en": {"type": "rank_features"}, "milco_m": {"type": "rank_features"}}}})
    dead = tmp_path / "dead.jsonl"
    with dead.open("w", encoding="utf-8") as stream:
        letters = DeadLetters(stream)
        summary = Ingestor(open_index(opensearch, index_name), FaultyEncoder(tiny_encoder), IngestOptions(batch_size=4),
                           letters).run(DictSource(documents))

    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert sorted((e["id"], e["field"]) for e in entries if e["id"]) == sorted((w, "milco_en") for w in FaultyEncoder.FAULTS)
    assert all("not positive finite numbers" in e["reason"] for e in entries if e["id"])
    assert sorted(e["line"] for e in entries if not e["id"]) == [8, 9]
    assert summary.failed == len(entries) == len(faulty) + 2
    stored = audit(opensearch, index_name, expected_fields(tiny_encoder, good))
    assert not stored.problems(len(good))
    record(Row("bad input", "NaN, inf, negative and zero weights from a custom encoder; non-dict documents",
               "Python API", len(documents), stored.stored, len(entries), 0, stored.duplicated, "-",
               "refused before the bulk request, dead-lettered naming field milco_en"))


def test_a_destination_with_a_conflicting_mapping_is_refused_up_front(
        opensearch: OpenSearch, opensearch_url: str, index_name: str, tiny_checkpoint: Path, tmp_path: Path,
        record) -> None:
    opensearch.indices.create(index=index_name, body={"mappings": {"properties": {"milco_en": {"type": "keyword"}}}})
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps({"id": str(i), "text": f"text {i}"}) + "\n" for i in range(10)))

    result = run_cli("ingest", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                     str(source))

    assert result.returncode == 6
    assert f"Index '{index_name}' exists but does not fit MILCO documents" in result.stderr
    assert "milco_en" in result.stderr and "Traceback" not in result.stderr
    opensearch.indices.refresh(index=index_name)
    assert opensearch.count(index=index_name)["count"] == 0
    record(Row("bad input", "destination index maps milco_en as keyword", "CLI", 10, 0, 0, 10, 0, "6",
               "refused before reading the file; nothing written"))
