"""One poisoned document costs only itself, and routed documents keep their routing, against a real node.

Each case audits the index afterwards: the exact ids stored, each with the vector the
in-process encoder gives its text, and each routed document found with a ``GET`` under the
routing the application uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.encoding.pruning import PruneSpec
from milco_os.engines import ClusterVersion
from milco_os.index.setup import index_body
from milco_os.index.vector_fields import RankFeatures
from milco_os.model import MilcoEncoder
from milco_os.model.tiny import MULTILINGUAL_SAMPLE
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, IngestSummary
from milco_os.pipeline.reindex import ReindexPlan, Reindexer
from tests.commands import run_cli
from tests.reliability.harness import Row, audit, expected_fields, summary_of

pytestmark = pytest.mark.integration


def test_a_batch_holding_poisoned_documents_writes_all_the_others(opensearch_url: str, opensearch: OpenSearch,
                                                                   index_name: str, tiny_checkpoint: Path,
                                                                   tiny_encoder: MilcoEncoder, tmp_path: Path,
                                                                   record) -> None:
    good = [{"id": f"g{n}", "text": MULTILINGUAL_SAMPLE[n % len(MULTILINGUAL_SAMPLE)], "score": n}
            for n in range(16)]
    poisoned = {"long-id": '{"id": "%s", "text": "Berlin"}' % ("x" * 600),
                "nan": '{"id": "nan", "text": "Paris", "score": NaN}',
                "surrogate-text": '{"id": "surrogate-text", "text": "lone \\ud800 half"}',
                "surrogate-title": '{"id": "surrogate-title", "text": "Rome", "title": "\\udfff"}'}
    lines = [json.dumps(doc) for doc in good[:8]] + list(poisoned.values()) + [json.dumps(doc) for doc in good[8:]]
    source = tmp_path / "docs.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    dead = tmp_path / "dead.jsonl"

    result = run_cli("ingest", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                     "--batch-size", "64", "--dead-letter", str(dead), str(source), timeout=300)

    assert result.returncode == 1, result.stderr
    summary = summary_of(result.stderr)
    assert (summary["read"], summary["written"], summary["failed"]) == (20, 17, 3), dead.read_text(encoding="utf-8")
    entries = {entry["line"]: entry for entry in map(json.loads, dead.read_text(encoding="utf-8").splitlines())}
    assert sorted(entries) == [9, 10, 11]
    assert entries[9]["id"] == "x" * 600 and "status 400): Validation Failed: 1: id [xxx" in entries[9]["reason"]
    assert entries[10]["id"] == "nan" and "status 400" in entries[10]["reason"]
    assert entries[11]["field"] == "text" and "not valid Unicode (code point U+D800" in entries[11]["reason"]
    # A lone surrogate outside the text field reaches the cluster, which stores it (as U+FFFD).
    expected = expected_fields(tiny_encoder, good + [{"id": "surrogate-title", "text": "Rome"}])
    stored = audit(opensearch, index_name, expected)
    assert not stored.problems(len(expected))
    record(Row("isolation", "one batch of 20: an id over 512 bytes and a NaN (the cluster refuses the whole bulk "
                            "request), text that is not valid Unicode, a lone surrogate in another field",
               "CLI", len(lines), stored.stored, len(entries), 0, stored.duplicated, "1",
               "request bisected: only the documents at fault dead-lettered, each with its own reason; the "
               "surrogate outside the text is stored as U+FFFD"))


def create_routed_index(client: OpenSearch, name: str, mappings: dict) -> None:
    client.indices.create(index=name, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                            "mappings": mappings})


@pytest.fixture
def routed_source(opensearch: OpenSearch) -> Iterator[dict[str, str]]:
    """A two-shard index whose mapping requires routing: 60 documents, each routed by its tenant."""
    name = "routed-src"
    create_routed_index(opensearch, name, {"_routing": {"required": True},
                                           "properties": {"tenant": {"type": "keyword"}}})
    routing = {f"r{n}": f"tenant-{n % 5}" for n in range(60)}
    helpers.bulk(opensearch, ({"_index": name, "_id": doc_id, "_routing": tenant, "_source": {
        "tenant": tenant, "body": MULTILINGUAL_SAMPLE[int(doc_id[1:]) % len(MULTILINGUAL_SAMPLE)]}}
        for doc_id, tenant in routing.items()), refresh=True)
    yield routing
    opensearch.indices.delete(index="routed-src,routed-dst", ignore_unavailable=True)


def reindex(opensearch: OpenSearch, encoder: MilcoEncoder, source: str, dest: str, folder: Path,
            in_place: bool = False) -> IngestSummary:
    plan = ReindexPlan(source, dest, IngestOptions(text_field="body", batch_size=16, prune=PruneSpec.parse("topk:8")),
                       slices=2, in_place=in_place)
    folder.mkdir()
    checkpoint = SliceCheckpoint.load_or_new(folder / "c.json", source, dest, 2, False)
    return Reindexer(opensearch, encoder, plan, checkpoint, DeadLetters(None)).run()


def found_under_routing(client: OpenSearch, index: str, routing: dict[str, str | None]) -> list[str]:
    """Ids a ``GET`` with the application's routing finds with that routing and MILCO terms."""
    found = []
    for doc_id, route in routing.items():
        hit = client.get(index=index, id=doc_id, routing=route, ignore=404)
        vector = {**hit.get("_source", {}).get("milco_en", {}), **hit.get("_source", {}).get("milco_m", {})}
        if hit.get("found") and hit.get("_routing") == route and vector:
            found.append(doc_id)
    return found


def test_a_routed_index_reindexes_and_enriches_under_each_documents_routing(
        opensearch: OpenSearch, tiny_encoder: MilcoEncoder, routed_source: dict[str, str], tmp_path: Path,
        record) -> None:
    summary = reindex(opensearch, tiny_encoder, "routed-src", "routed-dst", tmp_path / "copy")
    assert (summary.written, summary.failed) == (60, 0)
    mapping = next(iter(opensearch.indices.get_mapping(index="routed-dst").values()))["mappings"]
    assert mapping["_routing"] == {"required": True}
    copied = found_under_routing(opensearch, "routed-dst", routed_source)
    assert len(copied) == len(routed_source)

    enriched = reindex(opensearch, tiny_encoder, "routed-src", "routed-src", tmp_path / "enrich", in_place=True)
    assert (enriched.written, enriched.conflicts, enriched.failed) == (60, 0, 0)
    in_place = found_under_routing(opensearch, "routed-src", routed_source)
    assert len(in_place) == len(routed_source)
    assert opensearch.count(index="routed-src")["count"] == len(routed_source)
    for case, stored in (("reindex", copied), ("enrich in place", in_place)):
        record(Row("routing", f"{case} of a 2-shard index with _routing.required, 5 routing values", "Python API",
                   len(routed_source), len(stored), 0, 0, 0, "-",
                   "every document found by GET under its own routing, with MILCO terms"))


def test_ingest_routes_each_document_by_its_field(opensearch_url: str, opensearch: OpenSearch, index_name: str,
                                                  tiny_checkpoint: Path, tmp_path: Path, record) -> None:
    body = index_body(RankFeatures(ClusterVersion("opensearch", opensearch.info()["version"]["number"])),
                      passages=False, shards=2, replicas=0, default_pipeline=False)
    body["mappings"]["_routing"] = {"required": True}
    opensearch.indices.create(index=index_name, body=body)
    documents = [{"id": f"t{n}", "tenant": f"tenant-{n % 3}", "text": MULTILINGUAL_SAMPLE[n % len(MULTILINGUAL_SAMPLE)]}
                 for n in range(24)]
    unrouted = {"id": "no-tenant", "text": "a document without the routing field"}
    source = tmp_path / "routed.jsonl"
    source.write_text("".join(json.dumps(doc) + "\n" for doc in documents + [unrouted]), encoding="utf-8")
    dead = tmp_path / "dead.jsonl"

    result = run_cli("ingest", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                     "--routing-field", "tenant", "--dead-letter", str(dead), str(source), timeout=300)

    assert result.returncode == 1, result.stderr
    assert summary_of(result.stderr)["written"] == len(documents)
    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert [(entry["line"], entry["id"]) for entry in entries] == [(len(documents) + 1, "no-tenant")]
    assert "routing" in entries[0]["reason"]
    found = found_under_routing(opensearch, index_name, {doc["id"]: doc["tenant"] for doc in documents})
    assert len(found) == len(documents)
    record(Row("routing", "ingest --routing-field into an index with _routing.required; one document lacks the field",
               "CLI", len(documents) + 1, len(found), len(entries), 0, 0, "1",
               "each document found by GET under its field's value; the one without it dead-lettered "
               "(routing required)"))


@pytest.fixture
def questions_and_answers(opensearch: OpenSearch) -> Iterator[dict[str, str | None]]:
    """A parent/child index (join field): 8 questions, 24 answers routed to their question; id -> routing."""
    name = "qa-src"
    create_routed_index(opensearch, name, {"properties": {
        "relation": {"type": "join", "relations": {"question": "answer"}}}})
    routing: dict[str, str | None] = {}
    actions = []
    for q in range(8):
        routing[f"q{q}"] = None
        actions.append({"_index": name, "_id": f"q{q}", "_source": {
            "body": MULTILINGUAL_SAMPLE[q % len(MULTILINGUAL_SAMPLE)], "relation": "question"}})
        for a in range(3):
            routing[f"q{q}a{a}"] = f"q{q}"
            actions.append({"_index": name, "_id": f"q{q}a{a}", "_routing": f"q{q}", "_source": {
                "body": f"answer {a}: {MULTILINGUAL_SAMPLE[(q + a + 1) % len(MULTILINGUAL_SAMPLE)]}",
                "relation": {"name": "answer", "parent": f"q{q}"}}})
    helpers.bulk(opensearch, actions, refresh=True)
    yield routing
    opensearch.indices.delete(index="qa-src,qa-dst", ignore_unavailable=True)


def answers_by_question(client: OpenSearch, index: str) -> dict[str, int]:
    """Each question's number of answers, as a ``has_child`` query sees them."""
    client.indices.refresh(index=index)
    body = {"size": 100, "query": {"has_child": {"type": "answer", "query": {"match_all": {}}, "score_mode": "sum"}}}
    return {hit["_id"]: round(hit["_score"]) for hit in client.search(index=index, body=body)["hits"]["hits"]}


def test_parent_and_child_documents_reindex_and_enrich_joined(
        opensearch: OpenSearch, tiny_encoder: MilcoEncoder, questions_and_answers: dict[str, str | None],
        tmp_path: Path, record) -> None:
    before = answers_by_question(opensearch, "qa-src")
    assert before == {f"q{q}": 3 for q in range(8)}

    summary = reindex(opensearch, tiny_encoder, "qa-src", "qa-dst", tmp_path / "copy")
    assert (summary.written, summary.failed) == (len(questions_and_answers), 0)
    assert answers_by_question(opensearch, "qa-dst") == before
    copied = found_under_routing(opensearch, "qa-dst", questions_and_answers)

    enriched = reindex(opensearch, tiny_encoder, "qa-src", "qa-src", tmp_path / "enrich", in_place=True)
    assert (enriched.written, enriched.conflicts, enriched.failed) == (len(questions_and_answers), 0, 0)
    assert answers_by_question(opensearch, "qa-src") == before
    in_place = found_under_routing(opensearch, "qa-src", questions_and_answers)
    assert len(copied) == len(in_place) == len(questions_and_answers)
    for case, stored in (("reindex", copied), ("enrich in place", in_place)):
        record(Row("routing", f"{case} of a parent/child (join field) index: 8 parents, 24 children routed to "
                              "their parent", "Python API", len(questions_and_answers), len(stored), 0, 0, 0, "-",
                   "has_child finds the same 3 children per parent afterwards; each found under its routing"))
