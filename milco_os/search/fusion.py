"""Fusing a BM25 and a MILCO result list into one ranking, the way neural-search's search pipelines do.

Each list is normalised on its own (min-max, L2, or a reciprocal rank), then every document's
normalised scores are combined with one weight per list. A document missing from a list has
score 0 there: the arithmetic mean counts its weight, the geometric and harmonic means leave
it out, as neural-search's ``normalization-processor`` does; RRF is the weighted sum of
``1 / (rank_constant + rank)``, as its ``score-ranker-processor``. The same function fuses the
lists client-side where a cluster cannot, so either way the ranking is the same; Elasticsearch's
``linear`` retriever, a weighted sum, differs only at a min-max list's edges (``ELASTICSEARCH_EDGES``).
Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

SUM, MIN_MAX, L2, RRF = "sum", "min_max", "l2", "rrf"
FUSIONS = (SUM, MIN_MAX, L2, RRF)
NORMALIZING = (MIN_MAX, L2)
ARITHMETIC, GEOMETRIC, HARMONIC = "arithmetic_mean", "geometric_mean", "harmonic_mean"
COMBINATIONS = (ARITHMETIC, GEOMETRIC, HARMONIC)


@dataclass(frozen=True)
class MinMaxEdges:
    """What an engine's min-max makes of a list's minimum, and of a list whose scores are all equal."""

    lowest: float  # the list's minimum
    lone: float | None  # every score of a list whose max equals its min (None: each keeps its raw score)
    equal_within: float = 0.0  # max and min count as equal this close


# neural-search: the minimum 0.001 (not 0, so that a geometric or harmonic mean still counts the document), a lone
# score 1. Elasticsearch's linear retriever: the minimum 0, a lone score as it is (within 1e-6).
NEURAL_SEARCH_EDGES = MinMaxEdges(lowest=0.001, lone=1.0)
ELASTICSEARCH_EDGES = MinMaxEdges(lowest=0.0, lone=None, equal_within=1e-6)

Ranked = Sequence[tuple[str, float]]  # (document id, score), best first


@dataclass(frozen=True)
class Fusion:
    """How two lists (BM25 first, MILCO second) become one: ``technique`` and its parameters."""

    technique: str
    combination: str = ARITHMETIC  # min_max and l2 only
    bm25_weight: float = 0.5  # BM25's weight; MILCO's is 1 - it (a sum: BM25's boost, MILCO's 1)
    rank_constant: int = 60  # rrf only
    depth: int = 100  # how many of each list's best documents take part

    def __post_init__(self) -> None:
        if self.technique not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.technique!r}")
        if self.combination not in COMBINATIONS:
            raise ValueError(f"combination must be one of {', '.join(COMBINATIONS)}, not {self.combination!r}")
        if self.technique != SUM and not 0 <= self.bm25_weight <= 1:
            raise ValueError(f"--bm25-weight is BM25's share of the fusion, between 0 and 1, not {self.bm25_weight}")
        if self.bm25_weight < 0:
            raise ValueError(f"--bm25-weight must be >= 0, not {self.bm25_weight}")
        if self.rank_constant < 1 or self.depth < 1:
            raise ValueError("the rank constant and the fusion depth must be at least 1")

    @property
    def weights(self) -> tuple[float, float]:
        """The weights of the BM25 and the MILCO list."""
        if self.technique == SUM:
            return self.bm25_weight, 1.0
        return self.bm25_weight, 1.0 - self.bm25_weight

    def describe(self, weights: Sequence[float] | None = None) -> str:
        """The fusion in words, with ``weights`` where they are not its own (a cluster's RRF weighs each list 1)."""
        bm25, milco = weights or self.weights
        if self.technique == RRF:
            return f"rrf (rank constant {self.rank_constant}, weights BM25 {bm25:g} / MILCO {milco:g})"
        if self.technique == SUM:
            return f"sum (BM25 boost {bm25:g})"
        return f"{self.technique} + {self.combination} (weights BM25 {bm25:g} / MILCO {milco:g})"


def normalized(ranked: Ranked, technique: str, rank_constant: int = 60,
               edges: MinMaxEdges = NEURAL_SEARCH_EDGES) -> dict[str, float]:
    """One list's scores normalised by ``technique`` (min_max, l2 or rrf), by document id; min-max at ``edges``."""
    if technique == RRF:
        return {doc: 1.0 / (rank_constant + rank) for rank, (doc, _) in enumerate(ranked, start=1)}
    scores = [score for _, score in ranked]
    if technique == L2:
        norm = math.sqrt(sum(score * score for score in scores))
        return {doc: score / norm if norm else 0.0 for doc, score in ranked}
    if technique != MIN_MAX:
        raise ValueError(f"no normalisation {technique!r}")
    if not scores:
        return {}
    low, high = min(scores), max(scores)
    if high - low <= edges.equal_within:
        return {doc: score if edges.lone is None else edges.lone for doc, score in ranked}
    return {doc: (score - low) / (high - low) or edges.lowest for doc, score in ranked}


def combined(scores: Sequence[float], weights: Sequence[float], combination: str) -> float:
    """One document's normalised scores (0 where a list lacks it) combined with one weight per list."""
    if combination == ARITHMETIC:
        counted = [(s, w) for s, w in zip(scores, weights) if s >= 0]
        total = sum(w for _, w in counted)
        return sum(s * w for s, w in counted) / total if total else 0.0
    counted = [(s, w) for s, w in zip(scores, weights) if s > 0]
    total = sum(w for _, w in counted)
    if not counted or not total:
        return 0.0
    if combination == GEOMETRIC:
        return math.exp(sum(w * math.log(s) for s, w in counted) / total)
    if combination == HARMONIC:
        return total / sum(w / s for s, w in counted)
    raise ValueError(f"no combination {combination!r}")


@dataclass(frozen=True)
class Fused:
    """One document of a fused ranking: its fused score and each list's raw score (None where it is missing)."""

    id: str
    score: float
    parts: tuple[float | None, ...]


def fuse(lists: Sequence[Ranked], fusion: Fusion, weights: Sequence[float] | None = None,
         edges: MinMaxEdges = NEURAL_SEARCH_EDGES) -> list[Fused]:
    """``lists`` (BM25's, MILCO's; each cut to ``fusion.depth``) as one ranking, best first (ties by id).
    ``weights`` overrides ``fusion.weights`` (a cluster that takes no weights for RRF weighs each list 1), ``edges``
    says how min-max treats a list's edges (neural-search's unless given)."""
    cut = [list(ranked)[:fusion.depth] for ranked in lists]
    weights = tuple(weights or fusion.weights)
    raw = [dict(ranked) for ranked in cut]
    documents = list(dict.fromkeys(doc for ranked in cut for doc, _ in ranked))
    if fusion.technique == SUM:
        raise ValueError("a sum is one bool query in the cluster, not a fusion of two lists")
    normal = [normalized(ranked, fusion.technique, fusion.rank_constant, edges) for ranked in cut]
    if fusion.technique == RRF:
        scores = {doc: sum(w * part.get(doc, 0.0) for part, w in zip(normal, weights)) for doc in documents}
    else:
        scores = {doc: combined([part.get(doc, 0.0) for part in normal], weights, fusion.combination)
                  for doc in documents}
    ranking = sorted(documents, key=lambda doc: (-scores[doc], doc))
    return [Fused(doc, scores[doc], tuple(part.get(doc) for part in raw)) for doc in ranking]
