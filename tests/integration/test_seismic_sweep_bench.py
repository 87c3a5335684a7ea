"""``bench/seismic_sweep.py`` at 1,500 documents: every row measured against its reference, sanely."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.index.seismic_parameters import SeismicIndex
from milco_os.services.search_node import SearchNode

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_sweep_measures_the_engine_alone_and_the_product_at_1500_documents(
        tmp_path: Path, shared_ml_node: SearchNode) -> None:
    out = tmp_path / "sweep.json"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "seismic_sweep.py"), "--docs", "1500",
                             "--queries", "10", "--n-postings", "default,200",
                             "--index-variant", "n_postings=200,cluster_ratio=0.2",
                             "--url", shared_ml_node.url, "--json-out", str(out)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    with OpenSearch(hosts=[shared_ml_node.url]) as client:  # the node is shared: leave it as it was
        client.indices.delete(index="sweep-*", ignore_unavailable=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["method"]: row for row in report["rows"]}
    assert rows["exact, both views (rank_features)"]["recall_at_10"] == 1.0
    ratio = f"{SeismicIndex.cluster_ratio:g}"  # the product's, where a variant sets none
    assert set(report["built"]) == {"sweep-rf", f"sweep-seismic-cr{ratio}", f"sweep-seismic-np200-cr{ratio}",
                                    "sweep-seismic-np200-cr0.2"}
    # Below SEISMIC's approximate threshold every segment is scored exactly: the engine-alone and product rows
    # find what exact search finds, but for the byte quantisation's near-ties.
    measured = [row for name, row in rows.items() if name.startswith("n_postings ")]
    assert len(measured) == 3 * (2 * 6 + 1)
    assert all(row["recall_at_10"] >= 0.9 and row["took_p50"] >= 0 for row in measured), measured
    products = [row for row in measured if row.get("kind") == "product"]
    assert {row["n_postings"] for row in products} == {"default", "200"}
    assert {row["index_setting"] for row in products} == {f"n_postings default, cluster_ratio {ratio}",
                                                           f"n_postings 200, cluster_ratio {ratio}",
                                                           "n_postings 200, cluster_ratio 0.2"}
    variant = report["built"]["sweep-seismic-np200-cr0.2"]
    assert variant["force_merge_s"] >= 0 and variant["docs_per_s"] > 0 and variant["bytes_per_doc"] > 0
    assert report["neural_search"].startswith("3.")
    assert all(row["took_p50"] <= row["took_p95"] <= row["took_p99"] for row in report["rows"])
    assert "| SEISMIC exact, English only (its quantised vectors) |" in result.stdout
