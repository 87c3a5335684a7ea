"""Vector-field strategies: each way of storing MILCO vectors owns its mapping, settings and query clauses.

A strategy is resolved once per index and cluster version (``vector_field``) and then
handed to setup, ingest, reindex, enrich, search and eval through an ``IndexHandle``.
Adding a way of storing vectors is one new class here, registered in ``VECTOR_FIELDS``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Sequence

from milco_os.engines import ClusterVersion
from milco_os.errors import MilcoOsError
from milco_os.index.fields import EN_FIELD, NamedKeys, TermKeys
from milco_os.index.id_bands import BAND_FIELDS, BandedIdKeys

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from milco_os.encoding.sparse import SparseVector
    from milco_os.search.query_dsl import QueryTerm


class VectorField(ABC):
    """One field type holding one MILCO view per field, queried so that the score is the dot product."""

    type_name: ClassVar[str]
    keys: ClassVar[TermKeys] = NamedKeys()
    holds_passages: ClassVar[bool] = True

    def __init__(self, version: ClusterVersion) -> None:
        self.version = version

    @classmethod
    def from_mapping(cls, version: ClusterVersion, mapping: dict) -> VectorField:
        """The strategy of an existing index, with whatever parameters its mapping holds."""
        return cls(version)

    def field_mapping(self) -> dict:
        """The mapping of each vector field (``milco_en``, ``milco_m``, and their passage copies)."""
        return {"type": self.type_name}

    def properties(self) -> dict[str, dict]:
        """Every vector field of a document (its key scheme's fields) with its mapping."""
        return {name: self.field_mapping() for name in self.keys.fields}

    def exact_rescore(self, terms: Sequence[QueryTerm], query: dict, window: int) -> dict | None:
        """A ``rescore`` giving the top ``window`` hits of ``query`` their exact scores (None: already exact)."""
        return None

    def clipped(self, vector: SparseVector) -> bool:
        """True when the index cannot hold one of the vector's weights as it is (it is clipped)."""
        return False

    def index_settings(self) -> dict:
        """Index settings the field type needs (``index.`` prefix left out)."""
        return {}

    def settings_needed_in_place(self) -> dict:
        """Of ``index_settings``, those an existing index must already have to take the fields (enrich in place):
        static settings without which the field cannot work."""
        return {}

    def explain_source(self) -> bool | dict:
        """The ``_source`` request that returns the stored vectors (explain reads them)."""
        return True

    @abstractmethod
    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "", pruning_config: dict | None = None) -> dict:
        """A query scoring each document by the dot product of ``terms`` with its stored vector."""

    @classmethod
    @abstractmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        """Why this cluster cannot hold the field type, or None when it can."""


class RankFeatures(VectorField):
    """``rank_features`` fields with one ``rank_feature`` clause per term (``linear``, boost = query weight).

    Scores carry the 9 significant bits ``rank_features`` keeps. Every OpenSearch, and
    Elasticsearch with the mapper-extras module.
    """

    type_name = "rank_features"

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "", pruning_config: dict | None = None) -> dict:
        if pruning_config is not None:
            raise ValueError("token pruning (pruning_config) applies to sparse_vector fields only")
        return {"bool": {"should": [
            {"rank_feature": {"field": f"{path_prefix}{t.field}.{t.key}", "boost": t.weight, "linear": {}}}
            for t in terms]}}

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        return None


class ElasticsearchSparseVector(VectorField):
    """Elasticsearch's ``sparse_vector`` field (8.11+).

    Queried with one ``sparse_vector`` query per view (8.15+, optionally with Elasticsearch's
    ``pruning_config``) or, before, ``term`` clauses boosted by the query weight. From 8.19 the
    field prunes frequent tokens at query time unless told not to; from 9.1 vectors are left out
    of ``_source`` unless kept (explain, reindex and enrich read them there).
    """

    type_name = "sparse_vector"

    @property
    def _has_sparse_vector_query(self) -> bool:
        return self.version.major_minor >= (8, 15)

    @property
    def _leaves_vectors_out_of_source(self) -> bool:
        return self.version.major_minor >= (9, 1)

    def field_mapping(self) -> dict:
        if self.version.major_minor >= (8, 19):
            return {"type": self.type_name, "index_options": {"prune": False}}
        return {"type": self.type_name}

    def index_settings(self) -> dict:
        return {"mapping.exclude_source_vectors": False} if self._leaves_vectors_out_of_source else {}

    def explain_source(self) -> bool | dict:
        return {"exclude_vectors": False} if self._leaves_vectors_out_of_source else True

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "", pruning_config: dict | None = None) -> dict:
        if not self._has_sparse_vector_query:
            if pruning_config is not None:
                raise ValueError(f"token pruning needs the sparse_vector query (Elasticsearch 8.15+), "
                                 f"not {self.version.number}")
            return {"bool": {"should": [
                {"term": {f"{path_prefix}{t.field}": {"value": t.key, "boost": t.weight}}} for t in terms]}}
        by_field: dict[str, dict[str, float]] = {}
        for term in terms:
            by_field.setdefault(term.field, {})[term.key] = term.weight
        pruning = {"prune": True, "pruning_config": pruning_config} if pruning_config is not None else {}
        return {"bool": {"should": [
            {"sparse_vector": {"field": f"{path_prefix}{field}", "query_vector": vector, **pruning}}
            for field, vector in by_field.items()]}}

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        if version.engine != "elasticsearch" or version.major_minor < (8, 11):
            return f"the sparse_vector field needs Elasticsearch 8.11+, not {version.engine} {version.number}"
        return None


@dataclass(frozen=True)
class Ceilings:
    """The largest document (``ingest``) and query (``search``) weight one view's fields quantise exactly."""

    ingest: float = 3.0
    search: float = 16.0

    def __post_init__(self) -> None:
        if self.ingest <= 0 or self.search <= 0:
            raise ValueError(f"quantisation ceilings must be positive, not {self}")


@dataclass(frozen=True)
class SeismicIndex:
    """Index-side SEISMIC parameters (neural-search's ``method.parameters``); None leaves neural-search's default.

    Weights are quantised to one byte over [0, ceiling] on the approximate path, with ceilings
    per view (English and LexEcho weights differ in range): a document weight above its
    ingest ceiling, or a query weight above its search ceiling, counts as the ceiling there.
    Segments smaller than ``approximate_threshold`` score exactly.
    """

    approximate_threshold: int = 100_000
    n_postings: int | None = None
    cluster_ratio: float | None = None
    summary_prune_ratio: float | None = None
    en_ceilings: Ceilings = Ceilings()
    m_ceilings: Ceilings = Ceilings()

    def method(self, ceilings: Ceilings) -> dict:
        """The ``method`` of a field with ``ceilings``."""
        parameters = {name: getattr(self, name) for name in ALGORITHM_PARAMETERS if getattr(self, name) is not None}
        return {"name": "seismic", "parameters": {**parameters, "quantization_ceiling_ingest": ceilings.ingest,
                                                  "quantization_ceiling_search": ceilings.search}}

    @classmethod
    def from_methods(cls, en_method: dict, m_method: dict) -> SeismicIndex:
        """The parameters of an index from the ``method`` of its English field and of a LexEcho band."""
        parameters = en_method.get("parameters") or {}

        def ceilings(method: dict) -> Ceilings:
            given = method.get("parameters") or {}
            return Ceilings(given.get("quantization_ceiling_ingest", Ceilings.ingest),
                            given.get("quantization_ceiling_search", Ceilings.search))

        return cls(**{name: parameters[name] for name in ALGORITHM_PARAMETERS if name in parameters},
                   en_ceilings=ceilings(en_method), m_ceilings=ceilings(m_method))


ALGORITHM_PARAMETERS = ("approximate_threshold", "n_postings", "cluster_ratio", "summary_prune_ratio")


@dataclass(frozen=True)
class SeismicSearch:
    """Query-side SEISMIC parameters: candidates per field and segment (``k``), query terms that choose the
    clusters to visit (``top_n``) and how eagerly clusters are skipped (``heap_factor``, higher visits more)."""

    k: int = 100
    top_n: int = 16
    heap_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.top_n < 1 or self.heap_factor <= 0:
            raise ValueError(f"SEISMIC k and top_n must be >= 1 and heap_factor > 0, not {self}")


class Seismic(VectorField):
    """OpenSearch's ``sparse_vector`` with the SEISMIC method (3.3+, neural-search): approximate retrieval.

    Keys are term ids, the LexEcho view in 32,768-wide bands (``id_bands``): no id needs the
    16 bits neural-search 3.6 folds them into. A query is one ``neural_sparse`` clause per
    field its terms touch; the top hits are then rescored with the same clauses restricted
    to the first phase's candidates, which SEISMIC scores exactly from its forward index, so
    every returned score is the full dot product (to the byte quantisation) over all fields.
    """

    type_name = "seismic"
    keys = BandedIdKeys()
    holds_passages = False

    def __init__(self, version: ClusterVersion, index: SeismicIndex = SeismicIndex(),
                 search: SeismicSearch = SeismicSearch(), filters: Sequence[dict] = ()) -> None:
        super().__init__(version)
        self.index, self.search, self.filters = index, search, tuple(filters)

    @classmethod
    def from_mapping(cls, version: ClusterVersion, mapping: dict) -> Seismic:
        properties = mapping.get("properties") or {}
        en, m = (properties.get(name) or {} for name in (EN_FIELD, BAND_FIELDS[0]))
        return cls(version, SeismicIndex.from_methods(en.get("method") or {}, m.get("method") or {}))

    def searching(self, search: SeismicSearch, filters: Sequence[dict] = ()) -> Seismic:
        """The same index's strategy with other query-side parameters; ``filters`` restrict the candidates
        themselves (SEISMIC's own filter), so a narrow filter still finds k of them."""
        return Seismic(self.version, self.index, search, filters)

    def field_mapping(self, ceilings: Ceilings | None = None) -> dict:
        return {"type": "sparse_vector", "method": self.index.method(ceilings or self.index.en_ceilings)}

    def properties(self) -> dict[str, dict]:
        return {name: self.field_mapping(self.index.en_ceilings if name == EN_FIELD else self.index.m_ceilings)
                for name in self.keys.fields}

    def index_settings(self) -> dict:
        return {"sparse": True}

    def settings_needed_in_place(self) -> dict:
        return self.index_settings()

    def _clauses(self, terms: Sequence[QueryTerm], path_prefix: str, method_parameters: dict) -> dict:
        by_field: dict[str, dict[str, float]] = {}
        for term in terms:
            by_field.setdefault(path_prefix + term.field, {})[term.key] = term.weight
        return {"bool": {"should": [
            {"neural_sparse": {field: {"query_tokens": tokens, "method_parameters": method_parameters}}}
            for field, tokens in by_field.items()]}}

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "", pruning_config: dict | None = None) -> dict:
        if pruning_config is not None:
            raise ValueError("token pruning (pruning_config) is Elasticsearch's; SEISMIC prunes with top_n")
        self._warn_above_search_ceilings(terms)
        search = self.search
        parameters: dict = {"k": search.k, "top_n": search.top_n, "heap_factor": search.heap_factor}
        if self.filters:
            parameters["filter"] = {"bool": {"filter": list(self.filters)}}
        return self._clauses(terms, path_prefix, parameters)

    def _warn_above_search_ceilings(self, terms: Sequence[QueryTerm]) -> None:
        for english, name, ceilings in ((True, "English", self.index.en_ceilings),
                                        (False, "LexEcho", self.index.m_ceilings)):
            heaviest = max((t.weight for t in terms if (t.field == EN_FIELD) == english), default=0.0)
            if heaviest > ceilings.search:
                log.warning("query weight %.3g in %s is above the index's quantisation ceiling %s: approximate "
                            "search counts it as %s", heaviest, name, ceilings.search, ceilings.search)

    def exact_rescore(self, terms: Sequence[QueryTerm], query: dict, window: int) -> dict | None:
        # A filter that matches at most k documents of a segment makes SEISMIC score them exactly; the
        # candidates are at most k per clause of the first phase.
        fields_touched = len({term.field for term in terms})
        exact = self._clauses(terms, "", {"k": max(window, fields_touched * self.search.k), "filter": query})
        return {"window_size": window, "query": {"rescore_query": exact, "query_weight": 0.0,
                                                 "rescore_query_weight": 1.0, "score_mode": "total"}}

    def clipped(self, vector: SparseVector) -> bool:
        return bool((vector.en_weights > self.index.en_ceilings.ingest).any()
                    or (vector.m_weights > self.index.m_ceilings.ingest).any())

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        if version.engine != "opensearch" or version.major_minor < (3, 3):
            return (f"SEISMIC sparse_vector fields need OpenSearch 3.3+ with neural-search, not "
                    f"{version.engine} {version.number}")
        return None


VECTOR_FIELDS: dict[str, type[VectorField]] = {cls.type_name: cls
                                               for cls in (RankFeatures, ElasticsearchSparseVector, Seismic)}
DEFAULT_VECTOR_FIELD = RankFeatures.type_name


def vector_field_class(type_name: str, version: ClusterVersion) -> type[VectorField]:
    """The strategy class for ``type_name`` on a cluster of ``version``; a clear error where it cannot work."""
    cls = VECTOR_FIELDS.get(type_name)
    if cls is None:
        raise MilcoOsError(f"unknown vector field type '{type_name}': choose one of {', '.join(VECTOR_FIELDS)}")
    reason = cls.unsupported_reason(version)
    if reason:
        raise MilcoOsError(reason, hint=f"use --vector-field {DEFAULT_VECTOR_FIELD}.")
    return cls


def vector_field(type_name: str, version: ClusterVersion, seismic: SeismicIndex | None = None) -> VectorField:
    """The strategy for a new index (``seismic``: its index-side parameters, when the type is seismic)."""
    cls = vector_field_class(type_name, version)
    return Seismic(version, seismic) if cls is Seismic and seismic is not None else cls(version)
