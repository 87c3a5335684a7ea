"""``bench/run_all.py --render-only``'s sections render from the kept results: every name their text and tables
use is defined (a section that fails here would leave bench/RESULTS.md unrenderable)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run_all  # noqa: E402


@pytest.fixture(autouse=True)
def plots_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_all, "PLOTS", tmp_path)


def test_every_kept_section_renders() -> None:
    query = json.loads((run_all.RESULTS / "query_latency.json").read_text())
    assert run_all.scale_model(query).startswith("## Scale model")
    scale, plots = run_all.scale_section()
    assert scale.startswith("## A growing collection") and "1,000,000" in scale and len(plots) == 3
    assert run_all.seismic_sweep_section().startswith("## SEISMIC")
    assert run_all.gpu_section().startswith("## Encoding at the GPU's limit")
    assert run_all.reindex_workers_section().startswith("## Reindex over worker processes")
