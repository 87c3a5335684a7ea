"""Running MILCO searches: encode the query, build the DSL, return hits with their matched terms."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from milco_os.search import query_dsl as dsl
from milco_os.engines import ClusterVersion, engine_for
from milco_os.index.setup import SPARSE_VECTOR as SPARSE_VECTOR_FIELD
from milco_os.index.setup import stored_vector_type
from milco_os.index.fields import stored_terms
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector, TermVocabulary


class Encoder(Protocol):
    """What searching needs of an encoder (in-process or Triton)."""

    vocabulary: TermVocabulary

    def encode(self, texts: Sequence[str], *, max_length: int | None = None, prune: str | PruneSpec | None = None,
               echo: bool = True) -> list[SparseVector]: ...


@dataclass(frozen=True)
class SearchOptions:
    """Every knob of a MILCO search; the defaults score by the exact dot product."""

    size: int = 10
    from_: int = 0
    echo: bool = True
    echo_weight: float = 1.0
    query_prune: str | None = None
    query_max_length: int | None = 64
    max_clauses: int = dsl.DEFAULT_MAX_CLAUSES
    two_phase: bool = False
    first_phase_terms: int = 16
    window: int = 100
    passages: bool = False
    bm25_weight: float = 0.0
    text_fields: tuple[str, ...] = ("text",)
    filters: tuple[dict, ...] = ()
    source: bool | list[str] = True
    explain: bool = False
    query_style: str | None = None
    pruning_config: dict | None = None


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    source: dict
    terms: dict[str, float] = field(default_factory=dict)


def build_body(text: str, terms: list[dsl.QueryTerm], options: SearchOptions,
               style: str = dsl.RANK_FEATURE) -> dict:
    """The search request body for already-encoded query terms, in the query style of the index's fields."""
    if options.two_phase:
        body = dsl.two_phase_body(terms, size=options.size, first_phase_terms=options.first_phase_terms,
                                  window=options.window, max_clauses=options.max_clauses, style=style)
    elif options.passages:
        body = {"size": options.size, "query": dsl.passages_query(terms, max_clauses=options.max_clauses,
                                                                  style=style, pruning_config=options.pruning_config)}
    else:
        body = {"size": options.size, "query": dsl.sparse_query(terms, max_clauses=options.max_clauses, style=style,
                                                                pruning_config=options.pruning_config)}
    if options.bm25_weight > 0:
        body["query"] = dsl.hybrid_query(body["query"], text, text_fields=options.text_fields,
                                         bm25_weight=options.bm25_weight)
    body["query"] = dsl.with_filters(body["query"], options.filters)
    body["from"] = options.from_
    body["_source"] = True if options.explain else options.source
    return body


def contributions(terms: list[dsl.QueryTerm], source: dict) -> dict[str, float]:
    """Per matched term, query weight x stored weight, heaviest first."""
    stored = stored_terms(source)
    matched = {term.name: term.weight * stored[term.name] for term in terms if term.name in stored}
    return dict(sorted(matched.items(), key=lambda item: -item[1]))


@functools.lru_cache(maxsize=64)
def cluster_version(client) -> ClusterVersion:
    return engine_for(client).version


@functools.lru_cache(maxsize=256)
def query_style_for(client, index: str) -> str:
    """The query style an index's vector fields need: rank_feature, or sparse_vector (Elasticsearch 8.15+) / term."""
    if stored_vector_type(client, index) != SPARSE_VECTOR_FIELD:
        return dsl.RANK_FEATURE
    return dsl.SPARSE_VECTOR if cluster_version(client).major_minor >= (8, 15) else dsl.TERM


def with_vectors_in_source(client, body: dict) -> dict:
    """Elasticsearch 9.1+ may leave sparse vectors out of ``_source``; explaining needs them back."""
    version = cluster_version(client)
    if body["_source"] is True and version.engine == "elasticsearch" and version.major_minor >= (9, 1):
        body["_source"] = {"exclude_vectors": False}
    return body


def search(client, index: str, encoder: Encoder, text: str, options: SearchOptions = SearchOptions()) -> list[SearchHit]:
    """Encode ``text``, search ``index`` and return the hits (with per-term contributions when ``explain``)."""
    vector = encoder.encode([text], max_length=options.query_max_length, prune=options.query_prune,
                            echo=options.echo)[0]
    terms = dsl.query_terms(vector, encoder.vocabulary, echo=options.echo, echo_weight=options.echo_weight)
    style = options.query_style or query_style_for(client, index)
    body = build_body(text, terms, options, style)
    if options.explain and style != dsl.RANK_FEATURE:
        body = with_vectors_in_source(client, body)
    response = client.search(index=index, body=body)
    return [
        SearchHit(hit["_id"], hit["_score"], hit.get("_source", {}),
                  contributions(terms, hit["_source"]) if options.explain else {})
        for hit in response["hits"]["hits"]
    ]
