"""``bench/scale.py``'s arithmetic: the latency exponent, the per-method scaling rows and when SEISMIC stops."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from scale import Growing, exponent, scaling, seismic_stop  # noqa: E402


def test_the_exponent_is_the_log_log_slope_of_p50() -> None:
    assert exponent((100_000, 10.0), (1_000_000, 100.0)) == pytest.approx(1.0)
    assert exponent((100_000, 10.0), (1_000_000, 10.0)) == pytest.approx(0.0)
    assert exponent((100_000, 4.0), (400_000, 8.0)) == pytest.approx(0.5)
    # took counts whole milliseconds: 0 counts as half of one rather than dividing by zero
    assert exponent((100_000, 0.0), (1_000_000, 5.0)) == pytest.approx(1.0)


def row(method: str, p50: float) -> dict:
    return {"method": method, "took_p50": p50, "took_p95": 2 * p50, "recall_at_10": 0.9}


def test_scaling_takes_each_method_between_the_sizes_it_ran_at() -> None:
    collections = [{"docs": 100, "queries": [row("a", 2), row("s", 4)]},
                   {"docs": 400, "queries": [row("a", 4), row("s", 8)]},
                   {"docs": 1600, "queries": [row("a", 8)]}]
    entries = {entry["method"]: entry for entry in scaling(collections)}
    assert set(entries["a"]["at"]) == {100, 400, 1600} and entries["a"]["b"] == pytest.approx(0.5)
    assert set(entries["s"]["at"]) == {100, 400} and entries["s"]["b"] == pytest.approx(0.5)
    assert scaling([{"docs": 100, "queries": [row("a", 2)]}])[0]["b"] is None


def grown(docs: int, ingest_s: float, merge_s: float) -> Growing:
    index = Growing(handle=None, docs=docs, ingest_s=ingest_s)  # type: ignore[arg-type]
    index.at[docs] = {"docs": docs, "force_merge_s": merge_s}
    return index


def test_seismic_goes_on_while_the_estimate_fits_the_budget() -> None:
    seismic, rf = grown(100, ingest_s=10, merge_s=50), grown(100, ingest_s=10, merge_s=1)
    # to 300: 200 more documents at 0.1 s each, the merge 3x the last one; rf still has 900 documents to take
    assert seismic.step_estimate_s(300) == pytest.approx(20 + 150)
    assert seismic_stop(seismic, rf, 300, [100, 300, 1000], elapsed_s=100, budget_s=100 + 170 + 90) is None
    stopped = seismic_stop(seismic, rf, 300, [100, 300, 1000], elapsed_s=101, budget_s=100 + 170 + 90)
    assert stopped is not None and stopped["docs"] == 300 and stopped["last_docs"] == 100
    assert stopped["estimated_s"] == pytest.approx(170) and stopped["last_force_merge_s"] == 50
