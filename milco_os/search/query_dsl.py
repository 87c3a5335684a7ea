"""Query DSL builders: MILCO query vectors -> plain dicts for opensearch-py and elasticsearch clients.

A ``rank_feature`` clause with the ``linear`` function scores ``boost x stored weight``;
a bool ``should`` of one clause per query term, boost = query weight, therefore
scores each document by the MILCO dot product (to the 9 significant bits that
``rank_features`` keeps). On an Elasticsearch ``sparse_vector`` field the same dot
product comes from one ``sparse_vector`` query per view (8.15+, optionally with its
``pruning_config``) or, before that, from ``term`` clauses with boost = query weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from milco_os.index.feature_names import encode_key
from milco_os.index.fields import EN_FIELD, M_FIELD, PASSAGES_PATH
from milco_os.encoding.sparse import SparseVector, TermVocabulary

# OpenSearch 2.x refuses bool queries over indices.query.bool.max_clause_count (1024).
DEFAULT_MAX_CLAUSES = 1000
# How a query reaches the stored vectors: rank_features fields, or sparse_vector fields (two ways).
RANK_FEATURE = "rank_feature"
SPARSE_VECTOR = "sparse_vector"
TERM = "term"
QUERY_STYLES = (RANK_FEATURE, SPARSE_VECTOR, TERM)


@dataclass(frozen=True)
class QueryTerm:
    """One query term: its field and key in the index, its weight, and its readable name."""

    field: str
    key: str
    weight: float
    name: str


def query_terms(
    vector: SparseVector, vocabulary: TermVocabulary, *, echo: bool = True, echo_weight: float = 1.0
) -> list[QueryTerm]:
    """The query's terms, heaviest first; LexEcho terms left out or scaled by ``echo_weight``."""
    if echo_weight < 0:
        raise ValueError(f"echo_weight must be >= 0, not {echo_weight}")
    terms = [
        QueryTerm(EN_FIELD, encode_key(vocabulary.en_pieces[i]), w, vocabulary.en_name(i))
        for i, w in zip(vector.en_ids.tolist(), vector.en_weights.tolist())
    ]
    if echo and echo_weight > 0:
        terms += [
            QueryTerm(M_FIELD, encode_key(vocabulary.m_pieces[i]), w * echo_weight, vocabulary.m_name(i))
            for i, w in zip(vector.m_ids.tolist(), vector.m_weights.tolist())
        ]
    return sorted(terms, key=lambda term: (-term.weight, term.field, term.key))


def rank_feature_clause(term: QueryTerm, path_prefix: str = "") -> dict:
    return {"rank_feature": {"field": f"{path_prefix}{term.field}.{term.key}", "boost": term.weight, "linear": {}}}


def term_clause(term: QueryTerm, path_prefix: str = "") -> dict:
    return {"term": {f"{path_prefix}{term.field}": {"value": term.key, "boost": term.weight}}}


def sparse_vector_clauses(terms: Sequence[QueryTerm], path_prefix: str = "",
                          pruning_config: dict | None = None) -> list[dict]:
    """One ``sparse_vector`` query per view field; with ``pruning_config`` Elasticsearch prunes the query."""
    by_field: dict[str, dict[str, float]] = {}
    for term in terms:
        by_field.setdefault(term.field, {})[term.key] = term.weight
    pruning = {"prune": True, "pruning_config": pruning_config} if pruning_config is not None else {}
    return [{"sparse_vector": {"field": f"{path_prefix}{field}", "query_vector": vector, **pruning}}
            for field, vector in by_field.items()]


def sparse_query(terms: Sequence[QueryTerm], *, max_clauses: int = DEFAULT_MAX_CLAUSES, path_prefix: str = "",
                 style: str = RANK_FEATURE, pruning_config: dict | None = None) -> dict:
    """The exact dot product over the ``max_clauses`` heaviest terms (``terms`` come heaviest first)."""
    if style not in QUERY_STYLES:
        raise ValueError(f"query style must be one of {', '.join(QUERY_STYLES)}, not {style!r}")
    if not terms:
        return {"match_none": {}}
    kept = terms[:max_clauses]
    if style == SPARSE_VECTOR:
        return {"bool": {"should": sparse_vector_clauses(kept, path_prefix, pruning_config)}}
    clause = rank_feature_clause if style == RANK_FEATURE else term_clause
    return {"bool": {"should": [clause(t, path_prefix) for t in kept]}}


def two_phase_body(
    terms: Sequence[QueryTerm], *, size: int, first_phase_terms: int, window: int,
    max_clauses: int = DEFAULT_MAX_CLAUSES, style: str = RANK_FEATURE,
) -> dict:
    """Heaviest terms retrieve; the rest rescore the top ``window`` so their scores are the full dot product."""
    head, tail = terms[:first_phase_terms], terms[first_phase_terms:max_clauses]
    body: dict = {"size": size, "query": sparse_query(head, max_clauses=max_clauses, style=style)}
    if tail:
        body["rescore"] = {
            "window_size": max(window, size),
            "query": {"rescore_query": sparse_query(tail, max_clauses=max_clauses, style=style),
                      "query_weight": 1.0, "rescore_query_weight": 1.0, "score_mode": "total"},
        }
    return body


def passages_query(terms: Sequence[QueryTerm], *, max_clauses: int = DEFAULT_MAX_CLAUSES,
                   style: str = RANK_FEATURE, pruning_config: dict | None = None) -> dict:
    """A document scores as its best passage."""
    return {"nested": {"path": PASSAGES_PATH, "score_mode": "max",
                       "query": sparse_query(terms, max_clauses=max_clauses, path_prefix=PASSAGES_PATH + ".",
                                             style=style, pruning_config=pruning_config)}}


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
