"""The methods ``eval --compare`` runs, and its latency percentiles (pure parts; tests/integration/test_eval.py runs
the whole comparison on a real node)."""

from __future__ import annotations

from milco_os.search.comparison import BM25, methods, percentile
from milco_os.search.searcher import SearchOptions


def test_the_sweep_holds_bm25_milco_and_each_fusion_setting() -> None:
    base = SearchOptions(echo_weight=0.5, fusion="sum", bm25_weight=2.0)
    found = methods(base, [0.2, 0.4], [20, 60])
    assert [m.name for m in found] == [BM25, "MILCO", "min_max, BM25 weight 0.2", "min_max, BM25 weight 0.4",
                                       "l2, BM25 weight 0.2", "rrf, rank constant 20", "rrf, rank constant 60"]
    assert found[0].options is None and found[1].options.fusion is None
    assert all(m.options.echo_weight == 0.5 for m in found[1:])  # the options given carry over
    assert (found[3].options.fusion, found[3].options.bm25_weight) == ("min_max", 0.4)
    assert (found[6].options.fusion, found[6].options.rank_constant, found[6].options.bm25_weight) == ("rrf", 60, 0.5)


def test_percentiles_are_of_the_sorted_values() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.5) == 3.0 and percentile(values, 0.95) == 5.0 and percentile([], 0.5) == 0.0
