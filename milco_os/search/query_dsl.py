"""Query DSL builders: MILCO query vectors -> plain dicts for opensearch-py and elasticsearch clients.

The index's ``VectorField`` turns a list of query terms into a query whose score is the
MILCO dot product (``milco_os.index.vector_fields``); these builders choose the terms
(heaviest first, capped), and compose two-phase retrieval, best-passage scoring, BM25
hybrids and filters around it. Pure functions: no I/O.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

from milco_os.index.fields import EN_FIELD, EN_VIEW, M_FIELD, M_VIEW, PASSAGES_PATH, NamedKeys, QueryTerm, TermKeys
from milco_os.encoding.sparse import SparseVector, TermVocabulary

# OpenSearch 2.x refuses bool queries over indices.query.bool.max_clause_count (1024).
DEFAULT_MAX_CLAUSES = 1000


def query_terms(
    vector: SparseVector, vocabulary: TermVocabulary, *, echo: bool = True, echo_weight: float = 1.0,
    keys: TermKeys = NamedKeys(),
) -> list[QueryTerm]:
    """The query's terms under the index's key scheme, heaviest first; LexEcho terms left out or scaled by
    ``echo_weight``."""
    if echo_weight < 0:
        raise ValueError(f"echo_weight must be >= 0, not {echo_weight}")
    terms = [
        QueryTerm(*keys.key(EN_VIEW, i, vocabulary), w, vocabulary.en_name(i))
        for i, w in zip(vector.en_ids.tolist(), vector.en_weights.tolist())
    ]
    if echo and echo_weight > 0:
        terms += [
            QueryTerm(*keys.key(M_VIEW, i, vocabulary), w * echo_weight, vocabulary.m_name(i))
            for i, w in zip(vector.m_ids.tolist(), vector.m_weights.tolist())
        ]
    return sorted(terms, key=lambda term: (-term.weight, term.field, term.key))


class TermScorer(Protocol):
    """What turns query terms into a query scoring the dot product: a ``VectorField``, or ``NeuralSparseTokens``."""

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
        ...


class NeuralSparseTokens:
    """neural-search's ``neural_sparse`` query with the query's own tokens per view (``query_tokens``): the same
    dot product over ``rank_features`` fields, and the form the cluster's two-phase search pipeline rewrites."""

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
        tokens: dict[str, dict[str, float]] = {}
        for term in terms:
            tokens.setdefault(path_prefix + term.field, {})[term.key] = term.weight
        return {"bool": {"should": [{"neural_sparse": {field: {"query_tokens": weights}}}
                                    for field, weights in tokens.items()]}}


def neural_sparse_text_query(text: str, model_ids: Mapping[str, str], *, echo: bool = True,
                             echo_weight: float = 1.0) -> dict:
    """The cluster encodes ``text`` with the remote MILCO model of each view (``milco-os opensearch-ml install``)."""
    clauses = [{"neural_sparse": {EN_FIELD: {"query_text": text, "model_id": model_ids["en"]}}}]
    if echo and echo_weight > 0:
        clauses.append({"neural_sparse": {M_FIELD: {"query_text": text, "model_id": model_ids["m"],
                                                    "boost": echo_weight}}})
    return {"bool": {"should": clauses}}


def sparse_query(terms: Sequence[QueryTerm], field: TermScorer, *, max_clauses: int = DEFAULT_MAX_CLAUSES,
                 path_prefix: str = "") -> dict:
    """The exact dot product over the ``max_clauses`` heaviest terms (``terms`` come heaviest first)."""
    if not terms:
        return {"match_none": {}}
    return field.query(terms[:max_clauses], path_prefix)


def passages_query(terms: Sequence[QueryTerm], field: TermScorer, *, max_clauses: int = DEFAULT_MAX_CLAUSES) -> dict:
    """A document scores as its best passage."""
    return {"nested": {"path": PASSAGES_PATH, "score_mode": "max",
                       "query": sparse_query(terms, field, max_clauses=max_clauses, path_prefix=PASSAGES_PATH + ".")}}


def two_phase_body(terms: Sequence[QueryTerm], field: TermScorer, *, size: int, first_phase_terms: int,
                   window: int, max_clauses: int = DEFAULT_MAX_CLAUSES) -> dict:
    """Heaviest terms retrieve; the rest rescore the top ``window`` so their scores are the full dot product."""
    head, tail = terms[:first_phase_terms], terms[first_phase_terms:max_clauses]
    body: dict = {"size": size, "query": sparse_query(head, field, max_clauses=max_clauses)}
    if tail:
        body["rescore"] = {
            "window_size": max(window, size),
            "query": {"rescore_query": sparse_query(tail, field, max_clauses=max_clauses),
                      "query_weight": 1.0, "rescore_query_weight": 1.0, "score_mode": "total"},
        }
    return body


def hybrid_query(milco: dict, text: str, *, text_fields: Sequence[str], bm25_weight: float,
                 milco_weight: float = 1.0) -> dict:
    """MILCO plus BM25 ``multi_match`` on ``text_fields``, summed with the given weights."""
    return {"bool": {"should": [
        {"bool": {"should": [milco], "boost": milco_weight}},
        {"multi_match": {"query": text, "fields": list(text_fields), "boost": bm25_weight}},
    ]}}


def with_filters(query: dict, filters: Sequence[dict]) -> dict:
    """``query`` restricted to documents that match every filter (filters do not score)."""
    if not filters:
        return query
    return {"bool": {"must": [query], "filter": list(filters)}}
