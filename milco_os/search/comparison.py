"""Which search to run: BM25, MILCO and BM25+MILCO fusions scored on one labelled query set, with latencies.

``methods`` lists BM25 alone, MILCO with the options given, and a small sweep of fusions (min-max
over BM25 weights, L2, RRF over rank constants); ``compare`` runs every query through each and
scores the runs with ir-measures; ``plot`` draws the first metric against p95 latency.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import ir_measures

from milco_os.encoding.contract import SparseEncoder
from milco_os.engines.base import plain
from milco_os.index.handle import IndexHandle
from milco_os.search import query_dsl as dsl
from milco_os.search.evaluation import score_run
from milco_os.search.fusion import L2, MIN_MAX, RRF
from milco_os.search.hybrid import bm25_query
from milco_os.search.searcher import SearchOptions, search_result

BM25 = "BM25"


@dataclass(frozen=True)
class Method:
    """One way to answer the queries: BM25 alone (``options`` None) or a MILCO search with ``options``."""

    name: str
    options: SearchOptions | None


def methods(base: SearchOptions, bm25_weights: Sequence[float], rank_constants: Sequence[int]) -> list[Method]:
    """BM25, MILCO as ``base`` says, then min-max per BM25 weight, L2 at the first weight, RRF per rank constant."""
    milco = replace(base, fusion=None)
    found = [Method(BM25, None), Method("MILCO", milco)]
    found += [Method(f"min_max, BM25 weight {w:g}", replace(milco, fusion=MIN_MAX, bm25_weight=w))
              for w in bm25_weights]
    found += [Method(f"l2, BM25 weight {w:g}", replace(milco, fusion=L2, bm25_weight=w)) for w in bm25_weights[:1]]
    found += [Method(f"rrf, rank constant {k}", replace(milco, fusion=RRF, rank_constant=k, bm25_weight=0.5))
              for k in rank_constants]
    return found


@dataclass(frozen=True)
class MethodScores:
    name: str
    scores: dict[str, float]
    p50_ms: float
    p95_ms: float
    fused_by: str | None  # where its fusion ran (the first query's), None when not fused


def bm25_search(index: IndexHandle, text: str, options: SearchOptions) -> list[tuple[str, float]]:
    body = {"size": options.size, "_source": False,
            "query": dsl.with_filters(bm25_query(text, options.text_fields), options.filters)}
    response = plain(index.client.search(index=index.name, body=body))
    return [(hit["_id"], hit["_score"]) for hit in response["hits"]["hits"]]


def run_method(index: IndexHandle, encoder: SparseEncoder | None, topics: dict[str, str], method: Method,
               depth: int) -> tuple[list, list[float], str | None]:
    """The run of ``method`` over ``topics`` (``depth`` hits each), each query's wall time in ms, and where its
    fusion ran."""
    run, times, fused_by = [], [], None
    for qid, text in topics.items():
        started = time.perf_counter()
        if method.options is None:
            hits = bm25_search(index, text, SearchOptions(size=depth))
        else:
            result = search_result(index, encoder, text, replace(method.options, size=depth, source=False))
            hits, fused_by = [(hit.id, hit.score) for hit in result.hits], fused_by or result.fused_by
        times.append((time.perf_counter() - started) * 1000)
        run += [ir_measures.ScoredDoc(qid, doc, score) for doc, score in hits]
    return run, times, fused_by


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


def compare(index: IndexHandle, encoder: SparseEncoder | None, topics: dict[str, str], qrels: Sequence,
            measures: Sequence, candidates: Sequence[Method], depth: int,
            on_method: Callable[[str], None] = lambda name: None) -> list[MethodScores]:
    """Every method's scores on ``qrels`` and its latency percentiles."""
    rows = []
    for method in candidates:
        on_method(method.name)
        run, times, fused_by = run_method(index, encoder, topics, method, depth)
        rows.append(MethodScores(method.name, score_run(run, qrels, measures), percentile(times, 0.5),
                                 percentile(times, 0.95), fused_by))
    return rows


def plot(rows: Sequence[MethodScores], metric: str, path: Path) -> None:
    """``metric`` against p95 latency, one labelled point per method, written as an image to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        axes.scatter(row.p95_ms, row.scores[metric], color="tab:gray" if row.name == BM25 else "tab:blue")
        axes.annotate(row.name, (row.p95_ms, row.scores[metric]), textcoords="offset points", xytext=(5, 3),
                      fontsize=8)
    axes.set_xlabel("p95 latency per query, ms (client wall time)")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} against latency, per search method")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
