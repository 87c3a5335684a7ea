"""``milco-os setup``, ``ingest`` and ``search`` as a user runs them."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from tests.commands import run_cli

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "data" / "small_corpus.jsonl"


milco_os = partial(run_cli, timeout=300)


def test_setup_ingest_search_round_trip(opensearch_url: str, opensearch: OpenSearch, index_name: str,
                                        tiny_checkpoint: Path, tmp_path: Path) -> None:
    common = ("--url", opensearch_url, "--index", index_name)
    assert milco_os("setup", *common, "--replicas", "0").stdout.strip() == f"index {index_name}: created"
    assert milco_os("setup", *common, "--replicas", "0").stdout.strip() == f"index {index_name}: exists"

    source = tmp_path / "docs.jsonl"
    source.write_text(CORPUS.read_text(encoding="utf-8") + '{"id": "bad", "text": 7}\n', encoding="utf-8")
    dead = tmp_path / "dead.jsonl"
    ingested = milco_os("ingest", *common, "--model", str(tiny_checkpoint), "--prune", "topk:32",
                        "--dead-letter", str(dead), str(source))
    assert ingested.returncode == 1
    summary = next(json.loads(line) for line in ingested.stderr.splitlines() if line.startswith("{"))
    assert "document bad (line 25): field 'text' is a int" in ingested.stderr
    assert (summary["read"], summary["written"], summary["failed"]) == (25, 24, 1)
    assert json.loads(dead.read_text())["id"] == "bad"
    assert opensearch.count(index=index_name)["count"] == 24
    stored = opensearch.get(index=index_name, id="de-1")["_source"]
    assert stored["milco_meta"]["prune"] == "topk:32" and len(stored["milco_meta"]["text_hash"]) == 64
    assert 0 < len(stored["milco_en"]) + len(stored.get("milco_m", {})) <= 32

    found = milco_os("search", *common, "--model", str(tiny_checkpoint), "--format", "json", "--explain",
                     "--top-k", "3", "Berlin Hauptstadt")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert all(hit["terms"] and sum(hit["terms"].values()) == pytest.approx(hit["score"], rel=1e-2) for hit in hits)

    table = milco_os("search", *common, "--model", str(tiny_checkpoint), "Berlin")
    assert table.returncode == 0 and "query: Berlin" in table.stdout


def test_vectors_out_of_source_are_searched_alike_and_kept_out_through_reindex(
        opensearch_url: str, opensearch: OpenSearch, index_name: str, tiny_checkpoint: Path, tmp_path: Path) -> None:
    kept, copy, back = f"{index_name}-kept", f"{index_name}-copy", f"{index_name}-back"
    try:
        for name, flag in ((index_name, "--vectors-out-of-source"), (kept, "--vectors-in-source")):
            common = ("--url", opensearch_url, "--index", name)
            assert milco_os("setup", *common, "--replicas", "0", flag).returncode == 0
            ingested = milco_os("ingest", *common, "--model", str(tiny_checkpoint), "--dead-letter",
                                str(tmp_path / f"{name}.jsonl"), str(CORPUS))
            assert ingested.returncode == 0, ingested.stderr
        stored = opensearch.get(index=index_name, id="de-1")["_source"]
        assert "milco_en" not in stored and "milco_m" not in stored and stored["milco_meta"]["text_hash"]
        assert "milco_en" in opensearch.get(index=kept, id="de-1")["_source"]

        # Same scores from the indexed vectors; explain has nothing stored to read and says so.
        def hits(name: str, *extra: str) -> subprocess.CompletedProcess:
            return milco_os("search", "--url", opensearch_url, "--index", name, "--model", str(tiny_checkpoint),
                            "--format", "json", "--top-k", "5", *extra, "Berlin Hauptstadt")
        without, with_vectors = (json.loads(hits(name).stdout)["hits"] for name in (index_name, kept))
        assert [h["id"] for h in without] == [h["id"] for h in with_vectors]
        assert [h["score"] for h in without] == pytest.approx([h["score"] for h in with_vectors], rel=1e-6)
        refused = hits(index_name, "--explain")
        assert refused.returncode != 0 and "keeps its vectors out of _source" in refused.stderr
        table = milco_os("search", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                         "Berlin")
        assert table.returncode == 0 and without[0]["id"] in table.stdout, table.stderr
        again = milco_os("setup", "--url", opensearch_url, "--index", index_name, "--vectors-in-source")
        assert again.returncode == 6 and "its vectors are not kept in _source" in again.stderr

        # Reindex keeps the source's choice unless told otherwise; the vectors are encoded again either way.
        for dest, source, extra in ((copy, index_name, ()), (back, index_name, ("--vectors-in-source",))):
            done = milco_os("reindex", "--url", opensearch_url, "--source", source, "--dest", dest, "--text-field",
                            "text", "--model", str(tiny_checkpoint), "--dead-letter", str(tmp_path / f"{dest}.jsonl"),
                            *extra)
            assert done.returncode == 0, done.stderr
        assert "milco_en" not in opensearch.get(index=copy, id="de-1")["_source"]
        assert opensearch.get(index=back, id="de-1")["_source"]["milco_en"] == \
            opensearch.get(index=kept, id="de-1")["_source"]["milco_en"]
    finally:
        opensearch.indices.delete(index=",".join((kept, copy, back)), ignore_unavailable=True)
