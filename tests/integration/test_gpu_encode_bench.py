"""``bench/gpu_encode.py --small``: the GPU benchmark's code runs end to end on the CPU and reports sane figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
METHODS = ("milco-os", "authors' way", "backbone alone (floor)")


def test_the_small_run_measures_every_method(tmp_path: Path) -> None:
    out = tmp_path / "gpu_encode.json"
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_encode.py"), "--small", "--json-out",
                             str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout
    assert all(f"| {method} |" in table for method in METHODS), table
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["docs"] == 48
    assert 150 <= report["mean_doc_tokens"] <= 260, report["mean_doc_tokens"]
    for method in METHODS:
        figures = report["methods"][method]
        assert figures["docs_per_s"] > 0 and 0 < figures["share_of_ceiling"] < math.inf, (method, figures)
    # The calibrated random model gives sparse English vectors: about 150 terms asked for, of 4,000 pieces.
    assert 30 <= report["mean_terms"]["en"] <= 600, report["mean_terms"]
    agreement = report["agreement"]
    assert 0 < agreement["en_relative_l2_mean"] < 0.2, agreement
    assert agreement["top10_overlap_mean"] >= 0.5 and agreement["score_pearson_mean"] > 0.9, agreement
    assert report["query_latency_ms"]["p50"] <= report["query_latency_ms"]["p95"]
    assert math.isnan(report["host_waits_per_batch"])
