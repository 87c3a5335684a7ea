"""Running MILCO searches: encode the query, build the DSL, return hits with their matched terms."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from milco_os.encoding.contract import QUERY_MAX_LENGTH, SparseEncoder
from milco_os.encoding.sparse import TermVocabulary
from milco_os.errors import MilcoOsError
from milco_os.index.fields import TermKeys
from milco_os.index.handle import IndexHandle
from milco_os.index.model_record import ModelRecord, check_model
from milco_os.index.vector_fields import VectorField
from milco_os.search import query_dsl as dsl
from milco_os.search.fusion import ARITHMETIC, FUSIONS, SUM, Fusion
from milco_os.search.hybrid import AUTO, FUSE_IN, search_fused

RANK_FEATURE = "rank_feature"
NEURAL_SPARSE = "neural_sparse"
QUERY_STYLES = (RANK_FEATURE, NEURAL_SPARSE)
# From this many documents on, search runs in two phases unless told otherwise (bench/scale.py: recall@10 against
# the exact top-10 stays above 0.99 while latency falls several-fold; below it, exact search is cheap).
TWO_PHASE_FROM_DOCS = 50_000


@dataclass(frozen=True)
class SearchOptions:
    """Every knob of a MILCO search; the defaults score by the exact dot product."""

    size: int = 10
    from_: int = 0
    echo: bool = True
    echo_weight: float = 1.0
    query_prune: str | None = None
    query_max_length: int | None = QUERY_MAX_LENGTH
    max_clauses: int = dsl.DEFAULT_MAX_CLAUSES
    two_phase: bool | None = None  # None: two-phase on indices of TWO_PHASE_FROM_DOCS documents or more
    first_phase_terms: int = 16
    window: int = 1000  # 100 kept 98.3 % of the exact top-10 at 1M documents (bench/scale.py), 1000 all of it
    passages: bool = False
    # BM25 beside MILCO (``search/fusion.py``): None, none; "sum" adds a boosted BM25 query to the MILCO query;
    # min_max, l2 and rrf fuse the two ranked lists, in the cluster where it can (``fuse_in``).
    fusion: str | None = None
    bm25_weight: float = 0.5  # BM25's share of a fusion (MILCO has the rest); its boost in a sum
    combination: str = ARITHMETIC
    rank_constant: int = 60
    fusion_depth: int = 100
    fuse_in: str = AUTO
    text_fields: tuple[str, ...] = ("text",)
    filters: tuple[dict, ...] = ()
    source: bool | list[str] = True
    explain: bool = False
    # A fused hit's raw BM25 and MILCO scores: free when fused here, two more searches when the cluster fused.
    fused_parts: bool = False
    query_style: str = RANK_FEATURE
    cluster_models: dict[str, str] | None = None
    search_pipeline: str | None = None
    allow_other_model: bool = False  # search an index that records another model than the encoder's
    # The index's own search parameters, by vector-field type (e.g. "seismic": SeismicSearch(k=200)); a type
    # other than the index's is an error.
    field_parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.two_phase and self.passages:
            # A passage's best head score plus another passage's best tail score is no passage's dot product.
            raise ValueError("two-phase search and passage scoring cannot be combined")
        if self.query_style not in QUERY_STYLES:
            raise ValueError(f"query style must be one of {', '.join(QUERY_STYLES)}, not {self.query_style!r}")
        if self.query_style == NEURAL_SPARSE and self.two_phase:
            raise ValueError("neural_sparse queries run two-phase in the cluster: give the search pipeline "
                             "('opensearch-ml install' makes NAME-two-phase) instead of two-phase")
        if self.cluster_models is not None:
            if self.query_style != NEURAL_SPARSE:
                raise ValueError("the cluster encodes queries only in the neural_sparse query style")
            if self.passages:
                raise ValueError("passage scoring needs the query's terms: encode the query here, not in the cluster")
            if set(self.cluster_models) != {"en", "m"}:
                raise ValueError("cluster_models maps each view (en, m) to its remote model id")
        if self.fuse_in not in FUSE_IN:
            raise ValueError(f"fuse_in must be one of {', '.join(FUSE_IN)}, not {self.fuse_in!r}")
        if self.fused and self.search_pipeline:
            raise ValueError("a fused hybrid search runs through a pipeline of its own: leave out the search pipeline")
        self.fusion_settings  # refuses settings that do not go together

    @property
    def fusion_settings(self) -> Fusion | None:
        """The fusion of BM25 and MILCO these options ask for (None: MILCO alone)."""
        if self.fusion is None:
            return None
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        return Fusion(self.fusion, self.combination, self.bm25_weight, self.rank_constant, self.fusion_depth)

    @property
    def fused(self) -> bool:
        """True when two ranked lists are fused (not one summed query)."""
        return self.fusion not in (None, SUM)


def chosen_two_phase(index: IndexHandle, options: SearchOptions) -> bool:
    """Whether to search ``index`` in two phases: as ``options`` say, else where two-phase applies (one vector per
    document, terms known here, a field not approximate already) and the index is large enough to gain from it."""
    if options.two_phase is not None:
        return options.two_phase
    if options.passages or options.query_style == NEURAL_SPARSE or index.field.approximate:
        return False
    if options.fused:  # a hybrid query would apply two-phase's rescore to its BM25 list too
        return False
    return index.document_count >= TWO_PHASE_FROM_DOCS


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    source: dict
    terms: dict[str, float] = field(default_factory=dict)
    parts: tuple[float | None, float | None] | None = None  # a fused hit's raw BM25 and MILCO scores


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    fused_by: str | None = None  # where and how BM25 and MILCO were fused, in words (None: not fused)


def searching_field(field: VectorField, options: SearchOptions) -> VectorField:
    """The index's strategy for one search with ``options``; a ValueError where it refuses them."""
    problem = field.search_problem(two_phase=bool(options.two_phase),
                                   neural_sparse=options.query_style == NEURAL_SPARSE)
    if problem:
        raise ValueError(problem)
    return field.searching(options.field_parameters, options.filters)


def build_body(text: str, terms: list[dsl.QueryTerm], options: SearchOptions, field: VectorField) -> dict:
    """The search request body for already-encoded query terms (none when the cluster encodes), in the index's
    vector-field strategy or as ``neural_sparse`` queries."""
    field = searching_field(field, options)
    scorer: dsl.TermScorer = dsl.NeuralSparseTokens() if options.query_style == NEURAL_SPARSE else field
    rescore = None
    if options.cluster_models is not None:
        body = {"size": options.size, "query": dsl.neural_sparse_text_query(
            text, options.cluster_models, echo=options.echo, echo_weight=options.echo_weight)}
    elif options.two_phase:
        body = dsl.two_phase_body(terms, scorer, size=options.size, first_phase_terms=options.first_phase_terms,
                                  window=options.window, max_clauses=options.max_clauses)
    elif options.passages:
        body = {"size": options.size, "query": dsl.passages_query(terms, scorer, max_clauses=options.max_clauses)}
    else:
        body = {"size": options.size, "query": dsl.sparse_query(terms, scorer, max_clauses=options.max_clauses)}
        if terms:
            rescore = field.exact_rescore(terms[:options.max_clauses], options.size + options.from_)
    if options.fusion == SUM:
        body["query"] = dsl.hybrid_query(body["query"], text, text_fields=options.text_fields,
                                         bm25_weight=options.bm25_weight)
    if rescore:
        body["rescore"] = rescore
    body["query"] = dsl.with_filters(body["query"], options.filters)
    body["from"] = options.from_
    body["_source"] = field.explain_source() if options.explain else options.source
    return body


def contributions(terms: list[dsl.QueryTerm], source: dict, keys: TermKeys,
                  vocabulary: TermVocabulary) -> dict[str, float]:
    """Per matched term, query weight x stored weight, heaviest first."""
    stored = keys.stored_terms(source, vocabulary)
    matched = {term.name: term.weight * stored[term.name] for term in terms if term.name in stored}
    return dict(sorted(matched.items(), key=lambda item: -item[1]))


def search(index: IndexHandle, encoder: SparseEncoder | None, text: str,
           options: SearchOptions = SearchOptions()) -> list[SearchHit]:
    """Encode ``text`` (unless the cluster does: ``cluster_models``), search ``index`` and return the hits (with
    per-term contributions when ``explain`` and the query's terms are known here)."""
    return search_result(index, encoder, text, options).hits


def search_result(index: IndexHandle, encoder: SparseEncoder | None, text: str,
                  options: SearchOptions = SearchOptions()) -> SearchResult:
    """``search``, and where a fusion with BM25 ran."""
    if options.explain and not index.vectors_in_source:
        raise MilcoOsError(f"index '{index.name}' keeps its vectors out of _source: explain has no stored "
                           "weights to list term contributions from",
                           hint="reindex into an index that keeps them (milco-os reindex --vectors-in-source).")
    options = replace(options, two_phase=chosen_two_phase(index, options))
    terms: list[dsl.QueryTerm] = []
    if options.cluster_models is None:
        if encoder is None:
            raise ValueError("an encoder is needed unless the cluster encodes the query (cluster_models)")
        check_model(index.name, index.model, ModelRecord.of(encoder), allow_other=options.allow_other_model)
        vector = encoder.encode_queries([text], max_length=options.query_max_length, prune=options.query_prune,
                                        echo=options.echo)[0]
        terms = dsl.query_terms(vector, encoder.vocabulary, echo=options.echo, echo_weight=options.echo_weight,
                                keys=index.field.keys)

    def explained(source: dict) -> dict[str, float]:
        return contributions(terms, source, index.field.keys, encoder.vocabulary) \
            if options.explain and terms and encoder else {}

    fusion = options.fusion_settings
    if options.fused:
        milco = build_body(text, terms, replace(options, size=fusion.depth, from_=0), index.field)
        fused = search_fused(index, text, milco, fusion, size=options.size, from_=options.from_,
                             source=milco["_source"], filters=options.filters, text_fields=options.text_fields,
                             fuse_in=options.fuse_in, with_parts=options.fused_parts)
        return SearchResult([SearchHit(hit.id, hit.score, hit.source, explained(hit.source), hit.parts)
                             for hit in fused.hits], fused.fused_by)
    body = build_body(text, terms, options, index.field)
    # The search pipeline travels only when set: elasticsearch clients take no ``params``.
    extra = {"params": {"search_pipeline": options.search_pipeline}} if options.search_pipeline else {}
    response = index.client.search(index=index.name, body=body, **extra)
    sources = [(hit, hit.get("_source", {})) for hit in response["hits"]["hits"]]
    return SearchResult([SearchHit(hit["_id"], hit["_score"], source, explained(source)) for hit, source in sources],
                        f"in one query ({fusion.describe()})" if fusion else None)
