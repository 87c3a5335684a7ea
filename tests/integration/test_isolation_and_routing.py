"""One poisoned document costs only itself, and routed documents keep their routing, against a real node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.encoding.pruning import PruneSpec
from milco_os.model import MilcoEncoder
from milco_os.model.tiny import MULTILINGUAL_SAMPLE
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions
from milco_os.pipeline.reindex import ReindexPlan, Reindexer

pytestmark = pytest.mark.integration


def test_a_batch_holding_poisoned_documents_writes_all_the_others(opensearch_url: str, opensearch: OpenSearch,
                                                                   index_name: str, tiny_checkpoint: Path,
                                                                   tmp_path: Path) -> None:
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

    result = subprocess.run([sys.executable, "-m", "milco_os", "ingest", "--url", opensearch_url, "--index",
                             index_name, "--model", str(tiny_checkpoint), "--batch-size", "64", "--dead-letter",
                             str(dead), str(source)], capture_output=True, text=True, timeout=300)

    assert result.returncode == 1, result.stderr
    summaries = [line for line in result.stderr.splitlines() if line.startswith('{"read"')]
    assert summaries, result.stderr
    summary = json.loads(summaries[0])
    assert (summary["read"], summary["written"], summary["failed"]) == (20, 17, 3), dead.read_text(encoding="utf-8")
    entries = {entry["line"]: entry for entry in map(json.loads, dead.read_text(encoding="utf-8").splitlines())}
    assert sorted(entries) == [9, 10, 11]
    assert entries[9]["id"] == "x" * 600 and "status 400): Validation Failed: 1: id [xxx" in entries[9]["reason"]
    assert entries[10]["id"] == "nan" and "status 400" in entries[10]["reason"]
    assert entries[11]["field"] == "text" and "not valid Unicode (code point U+D800" in entries[11]["reason"]
    opensearch.indices.refresh(index=index_name)
    stored = {hit["_id"] for hit in helpers.scan(opensearch, index=index_name, query={"_source": False})}
    # A lone surrogate outside the text field reaches the cluster, which stores it (as U+FFFD).
    assert stored == {doc["id"] for doc in good} | {"surrogate-title"}


@pytest.fixture
def routed_source(opensearch: OpenSearch) -> dict[str, str]:
    """A two-shard index whose mapping requires routing: 60 documents, each routed by its tenant."""
    name = "routed-src"
    opensearch.indices.create(index=name, body={
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"_routing": {"required": True}, "properties": {"tenant": {"type": "keyword"}}}})
    routing = {f"r{n}": f"tenant-{n % 5}" for n in range(60)}
    helpers.bulk(opensearch, ({"_index": name, "_id": doc_id, "_routing": tenant, "_source": {
        "tenant": tenant, "body": MULTILINGUAL_SAMPLE[int(doc_id[1:]) % len(MULTILINGUAL_SAMPLE)]}}
        for doc_id, tenant in routing.items()), refresh=True)
    yield routing
    opensearch.indices.delete(index="routed-src,routed-dst", ignore_unavailable=True)


def reindex(opensearch: OpenSearch, encoder: MilcoEncoder, source: str, dest: str, folder: Path,
            in_place: bool = False):
    plan = ReindexPlan(source, dest, IngestOptions(text_field="body", batch_size=16, prune=PruneSpec.parse("topk:8")),
                       slices=2, in_place=in_place)
    folder.mkdir()
    checkpoint = SliceCheckpoint.load_or_new(folder / "c.json", source, dest, 2, False)
    return Reindexer(opensearch, encoder, plan, checkpoint, DeadLetters(None)).run()


def test_a_routed_index_reindexes_and_enriches_under_each_documents_routing(
        opensearch: OpenSearch, tiny_encoder: MilcoEncoder, routed_source: dict[str, str], tmp_path: Path) -> None:
    summary = reindex(opensearch, tiny_encoder, "routed-src", "routed-dst", tmp_path / "copy")
    assert (summary.written, summary.failed) == (60, 0)
    mapping = next(iter(opensearch.indices.get_mapping(index="routed-dst").values()))["mappings"]
    assert mapping["_routing"] == {"required": True}

    enriched = reindex(opensearch, tiny_encoder, "routed-src", "routed-src", tmp_path / "enrich", in_place=True)
    assert (enriched.written, enriched.conflicts, enriched.failed) == (60, 0, 0)

    for index in ("routed-dst", "routed-src"):
        for doc_id, tenant in routed_source.items():
            found = opensearch.get(index=index, id=doc_id, routing=tenant)
            vector = {**found["_source"].get("milco_en", {}), **found["_source"].get("milco_m", {})}
            assert found["_routing"] == tenant and vector, (index, doc_id)
