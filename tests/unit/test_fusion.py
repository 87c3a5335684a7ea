"""Every fusion against a numpy computation over the same two lists (neural-search's definitions)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milco_os.search.fusion import (
    ARITHMETIC, COMBINATIONS, ELASTICSEARCH_EDGES, GEOMETRIC, HARMONIC, L2, MIN_MAX, NEURAL_SEARCH_EDGES, RRF, SUM,
    Fusion, MinMaxEdges, fuse, normalized,
)

IDS = [f"d{n}" for n in range(30)]


def ranked_lists() -> st.SearchStrategy:
    """One list of distinct ids with positive scores, best first (scores may repeat)."""
    entries = st.lists(st.tuples(st.sampled_from(IDS), st.floats(0.01, 50, allow_nan=False)),
                       min_size=0, max_size=20, unique_by=lambda entry: entry[0])
    return entries.map(lambda entries: sorted(entries, key=lambda entry: -entry[1]))


def reference(lists: list[list[tuple[str, float]]], fusion: Fusion,
              edges: MinMaxEdges = NEURAL_SEARCH_EDGES) -> dict[str, float]:
    """The fused score of every document, computed column-wise with numpy."""
    docs = sorted({doc for ranked in lists for doc, _ in ranked})
    matrix = np.full((len(docs), len(lists)), np.nan)
    ranks = np.full((len(docs), len(lists)), np.nan)
    for column, ranked in enumerate(lists):
        for rank, (doc, score) in enumerate(ranked, start=1):
            matrix[docs.index(doc), column] = score
            ranks[docs.index(doc), column] = rank
    weights = np.array(fusion.weights)
    if fusion.technique == RRF:
        normal = np.nan_to_num(1.0 / (fusion.rank_constant + ranks))
        return dict(zip(docs, (normal * weights).sum(axis=1)))
    if fusion.technique == L2:
        norms = np.sqrt(np.nansum(matrix ** 2, axis=0))
        normal = np.where(norms > 0, matrix / np.where(norms > 0, norms, 1), 0.0)
    else:
        low, high = np.nanmin(matrix, axis=0, initial=np.inf), np.nanmax(matrix, axis=0, initial=-np.inf)
        spread = high - low
        apart = spread > edges.equal_within
        lone = matrix if edges.lone is None else edges.lone
        normal = np.where(apart, (matrix - low) / np.where(apart, spread, 1), lone)
        normal = np.where(apart & (normal == 0), edges.lowest, normal)
    normal = np.where(np.isnan(matrix), 0.0, normal)  # missing from a list: 0 there
    present = normal > 0
    if fusion.combination == ARITHMETIC:
        fused = (normal * weights).sum(axis=1) / weights.sum() if weights.sum() else np.zeros(len(docs))
    elif fusion.combination == GEOMETRIC:
        counted = (present * weights).sum(axis=1)
        logs = np.where(present, np.log(np.where(present, normal, 1.0)), 0.0)
        fused = np.where(counted > 0, np.exp((logs * weights).sum(axis=1) / np.where(counted > 0, counted, 1)), 0)
    else:
        counted = (present * weights).sum(axis=1)
        inverse = np.where(present, weights / np.where(present, normal, 1.0), 0.0).sum(axis=1)
        fused = np.where(inverse > 0, counted / np.where(inverse > 0, inverse, 1), 0.0)
    return dict(zip(docs, fused))


FUSIONS = st.one_of(
    st.builds(Fusion, st.sampled_from([MIN_MAX, L2]), st.sampled_from(COMBINATIONS), st.floats(0, 1)),
    st.builds(Fusion, st.just(RRF), bm25_weight=st.floats(0, 1), rank_constant=st.integers(1, 100)),
)


@settings(max_examples=300, deadline=None)
@given(bm25=ranked_lists(), milco=ranked_lists(), fusion=FUSIONS)
def test_each_fusion_matches_numpy(bm25, milco, fusion) -> None:
    fused = fuse([bm25, milco], fusion)
    expected = reference([bm25, milco], fusion)
    assert {hit.id for hit in fused} == set(expected)
    for hit in fused:
        assert hit.score == pytest.approx(expected[hit.id], rel=1e-9, abs=1e-12)
    assert [hit.score for hit in fused] == sorted((hit.score for hit in fused), reverse=True)


@settings(max_examples=200, deadline=None)
@given(bm25=ranked_lists(), milco=ranked_lists(), technique=st.sampled_from([MIN_MAX, L2]), weight=st.floats(0, 1))
def test_elasticsearch_linear_fusion_matches_numpy(bm25, milco, technique, weight) -> None:
    fusion = Fusion(technique, ARITHMETIC, weight)
    fused = fuse([bm25, milco], fusion, edges=ELASTICSEARCH_EDGES)
    expected = reference([bm25, milco], fusion, ELASTICSEARCH_EDGES)
    assert {hit.id: hit.score for hit in fused} == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # a weighted sum, as the linear retriever scores: the weights add to 1, so it is the arithmetic mean
    assert sum(fusion.weights) == pytest.approx(1.0)


def test_elasticsearch_min_max_edges() -> None:
    assert normalized([("a", 2.0)], MIN_MAX, edges=ELASTICSEARCH_EDGES) == {"a": 2.0}  # a lone score as it is
    assert normalized([("a", 4.0), ("b", 2.0)], MIN_MAX, edges=ELASTICSEARCH_EDGES) == {"a": 1.0, "b": 0.0}
    assert normalized([("a", 4.0), ("b", 4.0 - 1e-7)], MIN_MAX, edges=ELASTICSEARCH_EDGES) == {
        "a": 4.0, "b": 4.0 - 1e-7}


def test_parts_are_each_lists_raw_score() -> None:
    fused = fuse([[("a", 9.0), ("b", 3.0)], [("b", 0.4), ("c", 0.2)]], Fusion(MIN_MAX))
    assert {hit.id: hit.parts for hit in fused} == {"a": (9.0, None), "b": (3.0, 0.4), "c": (None, 0.2)}


def test_min_max_follows_neural_search_at_the_edges() -> None:
    assert normalized([("a", 2.0)], MIN_MAX) == {"a": 1.0}  # a lone score
    assert normalized([("a", 4.0), ("b", 2.0)], MIN_MAX) == {"a": 1.0, "b": 0.001}  # the minimum is not 0
    assert normalized([("a", 0.0), ("b", 0.0)], L2) == {"a": 0.0, "b": 0.0}


def test_rrf_ranks_by_position_not_score() -> None:
    fusion = Fusion(RRF, rank_constant=60)
    fused = fuse([[("a", 100.0), ("b", 99.0)], [("b", 0.2), ("a", 0.1)]], fusion)
    assert fused[0].score == pytest.approx(0.5 / 61 + 0.5 / 62)
    assert {hit.id for hit in fused} == {"a", "b"} and fused[0].score == fused[1].score


def test_depth_cuts_each_list() -> None:
    fused = fuse([[("a", 3.0), ("b", 2.0), ("c", 1.0)], []], Fusion(MIN_MAX, depth=2))
    assert [hit.id for hit in fused] == ["a", "b"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        Fusion(MIN_MAX, bm25_weight=2.0)
    with pytest.raises(ValueError, match="fusion must be one of"):
        Fusion("max")
    with pytest.raises(ValueError, match="one bool query"):
        fuse([[], []], Fusion(SUM, bm25_weight=2.0))
    assert Fusion(SUM, bm25_weight=2.0).weights == (2.0, 1.0)
    assert HARMONIC in COMBINATIONS
