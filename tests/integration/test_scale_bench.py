"""``bench/scale.py`` at 2,500 documents: every ingest path, pruning level and query method measured, sanely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.services.search_node import SearchNode

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
INGEST_PATHS = ("plain _bulk, no pipeline (baseline)", "plain _bulk through milco-stamp (other writers)",
                "milco-os Ingestor (its writes skip milco-stamp)")


def test_the_bench_measures_every_method_at_2500_documents(tmp_path: Path, shared_ml_node: SearchNode) -> None:
    out = tmp_path / "scale.json"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "scale.py"), "--docs", "2500", "--queries", "20",
                             "--baseline-docs", "1000", "--size-docs", "250", "--seismic-docs", "1500",
                             "--url", shared_ml_node.url, "--json-out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    with OpenSearch(hosts=[shared_ml_node.url]) as client:  # the node is shared: leave it as it was
        client.indices.delete(index="scale-rf,scale-seismic", ignore_unavailable=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert "| exact rank_features | 1.000 |" in result.stdout and report["elapsed_s"] > 0

    ingest = report["ingest"]["rows"]
    assert set(ingest) == set(INGEST_PATHS)
    assert all(row["docs_per_s"] > 0 and row["mb_per_s"] > 0 for row in ingest.values())

    sizes = report["sizes"]
    assert [row["level"] for row in sizes] == ["P0", "P50", "P80", "P90", "P95"]
    in_source = [row["bytes_per_doc"] for row in sizes]
    assert in_source == sorted(in_source, reverse=True)  # fewer terms, smaller index
    assert all(row["bytes_per_doc_no_source"] < row["bytes_per_doc"] for row in sizes)

    main = report["main"]
    assert set(main) == {"scale-rf", "scale-seismic"} and all(row["bytes_per_doc"] > 0 for row in main.values())
    assert main["scale-seismic"]["docs"] == 1500 and report["seismic_threads"] >= 1

    methods = {row["method"]: row for row in report["queries"]}
    subset = "exact rank_features, first 1500 documents"
    assert len(methods) == 8 and methods["exact rank_features"]["recall_at_10"] == 1.0
    assert methods[subset]["recall_at_10"] == 1.0 and methods[subset]["reference"] == subset
    for name, row in methods.items():
        assert 0 <= row["recall_at_10"] <= 1, name
        assert row["took_p50"] <= row["took_p95"] <= row["took_p99"], name
        assert row["wall_p50"] <= row["wall_p95"] <= row["wall_p99"] and row["qps_1"] > 0 and row["qps_4"] > 0, name
        profile = row["slowest_profile"]
        assert profile["costliest_own_ms"] and min(profile["costliest_own_ms"].values()) >= 0, name
    # 1,500 documents are below SEISMIC's approximate threshold: it scores every document exactly, so it finds the
    # exact top-10 of the documents it holds (all but ties within its quantisation).
    seismic = methods["SEISMIC (k 100, top_n 16, heap_factor 2), 1500 documents"]
    assert seismic["reference"] == subset and seismic["recall_at_10"] >= 0.95
    # The queries are about documents of the collection, but BM25 ranks otherwise than the dot product.
    assert 0 < methods["BM25 (baseline)"]["recall_at_10"] < 1
    two_phase = [methods[f"milco-os two-phase 16 terms, window {w}"]["recall_at_10"] for w in (100, 1000)]
    assert two_phase[0] <= two_phase[1]
    assert not list(tmp_path.glob("*.dead-letter*"))
