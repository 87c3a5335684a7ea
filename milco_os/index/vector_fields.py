"""Vector-field strategies: each way of storing MILCO vectors owns its mapping, settings and whole search.

A strategy is resolved once per index and cluster version (``vector_field``) and then
handed to setup, ingest, reindex, enrich, search and eval through an ``IndexHandle``.
Each one says which search options it takes or refuses, its own index-side and
query-side parameters (with their flags), its rescore and the paths it stores vectors
at. Adding a way of storing vectors is one new class here, registered in ``VECTOR_FIELDS``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.sparse import SparseVector
from milco_os.engines import ClusterVersion
from milco_os.errors import MilcoOsError
from milco_os.index import seismic_parameters
from milco_os.index.fields import EN_FIELD, M_FIELD, PASSAGES_PATH, NamedKeys, QueryTerm, TermKeys
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.seismic_keys import EnglishIdKeys
from milco_os.index.seismic_parameters import ALGORITHM_PARAMETERS, SeismicIndex, SeismicSearch
from milco_os.parameters import Flag, ParameterGroup

log = logging.getLogger(__name__)

# While a bulk load writes into a SEISMIC index: an explicit refresh interval turns search-idle off, so the indexing
# buffer never flushes one segment past approximate_threshold (neural-search would cluster it on the thread holding
# the bulk request), and no merge makes a segment big enough to reach it. One force-merge after the load clusters
# the index once (bench/scale.py loaded 1,000,000 documents so, in 34 segments, with no stall).
LOADING_SETTINGS = {"refresh_interval": "1s", "merge.policy.max_merged_segment": "256mb"}

TextSample = Callable[[], Sequence[str]]
DocumentCount = Callable[[], "int | None"]  # documents the new index is about to get, where known


class VectorField(ABC):
    """One field type holding one MILCO view per field, queried so that the score is the dot product."""

    type_name: ClassVar[str]
    summary: ClassVar[str]  # what the type is and what it needs, for --vector-field's help
    keys: ClassVar[TermKeys] = NamedKeys()
    holds_passages: ClassVar[bool] = True
    # Retrieval approximate already (and rescored exactly): a search never goes two-phase unless told.
    approximate: ClassVar[bool] = False
    index_parameters: ClassVar[ParameterGroup | None] = None  # set once, when an index gets its MILCO fields
    search_parameters: ClassVar[ParameterGroup | None] = None  # per query

    def __init__(self, version: ClusterVersion) -> None:
        self.version = version

    @classmethod
    def from_mapping(cls, version: ClusterVersion, mapping: dict) -> VectorField:
        """The strategy of an existing index, with whatever parameters its mapping holds."""
        return cls(version)

    @classmethod
    def created(cls, version: ClusterVersion, parameters: Any = None) -> VectorField:
        """The strategy of a new index with ``parameters`` (its ``index_parameters`` dataclass; None: defaults)."""
        if parameters is not None:
            raise ValueError(f"{cls.type_name} fields take no index parameters")
        return cls(version)

    @classmethod
    def needs_encoder(cls, given: Mapping[str, Any]) -> bool:
        """Whether preparing a new index's parameters from the index flags ``given`` encodes a sample of texts."""
        return False

    @classmethod
    def prepared_parameters(cls, given: Mapping[str, Any], encoder: SparseEncoder | None = None,
                            texts: TextSample = tuple, prune: Any = "none",
                            documents: DocumentCount = lambda: None) -> Any:
        """A new index's parameters from the index flags ``given`` (field -> value), None for the defaults;
        ``encoder``, ``texts`` and ``prune`` measure what the flags leave to the encoder's weights, ``documents``
        tells how many documents the index is about to get (a reindex's source) where the type sizes by it."""
        if cls.index_parameters is None:
            if given:
                raise ValueError(f"{given_flags(given, all_index_flags())} applies to another --vector-field, not "
                                 f"{cls.type_name}")
            return None
        return cls.index_parameters.build(given) if given else None

    def searching(self, parameters: Mapping[str, Any], filters: Sequence[dict] = ()) -> VectorField:
        """The strategy for one search: ``parameters`` maps field types to their search-parameter dataclasses (any
        other type's is an error); ``filters`` restrict the documents (the caller applies them as well)."""
        others = sorted(set(parameters) - {self.type_name})
        if others:
            flags = ", ".join(flag.option for other in others
                              for flag in VECTOR_FIELDS[other].search_parameters.flags)
            raise ValueError(f"{flags}: {' and '.join(others)} search parameters, not for a {self.type_name} index")
        return self.with_search(parameters.get(self.type_name), filters)

    def with_search(self, parameters: Any, filters: Sequence[dict]) -> VectorField:
        """This strategy with its own search parameters (None: defaults) and the search's filters."""
        return self

    def search_problem(self, *, two_phase: bool, neural_sparse: bool) -> str | None:
        """Why a search two-phase here, or with neural-search's ``neural_sparse`` query, cannot run, or None."""
        return None

    def field_mapping(self) -> dict:
        """The mapping of each vector field (``milco_en``, ``milco_m``, and their passage copies)."""
        return {"type": self.type_name}

    def properties(self) -> dict[str, dict]:
        """Every vector field of a document (its key scheme's fields) with its mapping."""
        return {name: self.field_mapping() for name in self.keys.fields}

    def vector_paths(self, passages: bool | None = None) -> list[str]:
        """Where documents store the vectors: top level (``passages`` False), in passages (True), or both (None)."""
        return [path for name in self.keys.fields for path in (
            ([name] if passages is not True else []) + ([f"{PASSAGES_PATH}.{name}"] if passages is not False else []))]

    def exact_rescore(self, terms: Sequence[QueryTerm], size: int) -> dict | None:
        """A ``rescore`` adding to the score of the top hits of ``query(terms)`` (at least ``size``) the part of
        their dot product with ``terms`` that the query leaves out, so that they get exact scores (None: already
        exact)."""
        return None

    def clipped(self, vector: SparseVector) -> bool:
        """True when the index cannot hold one of the vector's weights as it is (it is clipped)."""
        return False

    def parameters_summary(self) -> str | None:
        """One line on the index parameters a new index was given, for setup to print (None: none to tell)."""
        return None

    def clipping_warning(self, count: int) -> str:
        """What to tell when ``count`` documents hold weights the index clips."""
        return f"{count} document(s) have weights the index clips"

    def index_settings(self) -> dict:
        """Index settings the field type needs (``index.`` prefix left out)."""
        return {}

    def loading_settings(self) -> dict[str, str]:
        """Index settings (``index.`` prefix left out) to hold while a bulk load writes into the index, the index's
        own put back afterwards (``pipeline/bulk_loading.py``)."""
        return {}

    def settings_needed_in_place(self) -> dict:
        """Of ``index_settings``, those an existing index must already have to take the fields (enrich in place):
        static settings without which the field cannot work."""
        return {}

    def explain_source(self) -> bool | dict:
        """The ``_source`` request that returns the stored vectors (explain reads them)."""
        return True

    @abstractmethod
    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
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
    summary = "every cluster (the default)"

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
        return {"bool": {"should": [
            {"rank_feature": {"field": f"{path_prefix}{t.field}.{t.key}", "boost": t.weight, "linear": {}}}
            for t in terms]}}

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        return None


def parse_pruning(value: str) -> SparseVectorPruning:
    """``RATIO:WEIGHT`` as Elasticsearch's token pruning thresholds."""
    try:
        ratio, weight = (float(part) for part in value.split(":"))
    except ValueError:
        raise ValueError(f"'{value}' is not RATIO:WEIGHT (e.g. 5:0.4)") from None
    return SparseVectorPruning(ratio, weight)


@dataclass(frozen=True)
class SparseVectorPruning:
    """Elasticsearch's query-time token pruning (``pruning_config``): scores then approximate the dot product."""

    tokens_freq_ratio_threshold: float
    tokens_weight_threshold: float

    def pruning_config(self) -> dict:
        return {"tokens_freq_ratio_threshold": self.tokens_freq_ratio_threshold,
                "tokens_weight_threshold": self.tokens_weight_threshold, "only_score_pruned_tokens": False}


class ElasticsearchSparseVector(VectorField):
    """Elasticsearch's ``sparse_vector`` field (8.11+).

    Queried with one ``sparse_vector`` query per view (8.15+, optionally with Elasticsearch's
    ``pruning_config``) or, before, ``term`` clauses boosted by the query weight. From 8.19 the
    field prunes frequent tokens at query time unless told not to; from 9.1 vectors are left out
    of ``_source`` unless kept (explain, reindex and enrich read them there).
    """

    type_name = "sparse_vector"
    summary = "Elasticsearch 8.11+"
    search_parameters = ParameterGroup(SparseVectorPruning, (
        Flag("sparse-vector-pruning", "pruning", kind=str, parse=parse_pruning, metavar="RATIO:WEIGHT",
             help="sparse_vector indices (Elasticsearch): prune query tokens with this pruning_config (scores then "
                  "approximate the dot product)."),
    ), builder=lambda given: given["pruning"])

    def __init__(self, version: ClusterVersion, pruning: SparseVectorPruning | None = None) -> None:
        super().__init__(version)
        self.pruning = pruning

    @property
    def _has_sparse_vector_query(self) -> bool:
        return self.version.major_minor >= (8, 15)

    @property
    def _leaves_vectors_out_of_source(self) -> bool:
        return self.version.major_minor >= (9, 1)

    def with_search(self, parameters: SparseVectorPruning | None, filters: Sequence[dict]) -> VectorField:
        if parameters is not None and not self._has_sparse_vector_query:
            raise ValueError(f"token pruning needs the sparse_vector query (Elasticsearch 8.15+), "
                             f"not {self.version.number}")
        return ElasticsearchSparseVector(self.version, parameters)

    def field_mapping(self) -> dict:
        if self.version.major_minor >= (8, 19):
            return {"type": self.type_name, "index_options": {"prune": False}}
        return {"type": self.type_name}

    def index_settings(self) -> dict:
        return {"mapping.exclude_source_vectors": False} if self._leaves_vectors_out_of_source else {}

    def explain_source(self) -> bool | dict:
        return {"exclude_vectors": False} if self._leaves_vectors_out_of_source else True

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
        if not self._has_sparse_vector_query:
            return {"bool": {"should": [
                {"term": {f"{path_prefix}{t.field}": {"value": t.key, "boost": t.weight}}} for t in terms]}}
        by_field: dict[str, dict[str, float]] = {}
        for term in terms:
            by_field.setdefault(term.field, {})[term.key] = term.weight
        pruning = {"prune": True, "pruning_config": self.pruning.pruning_config()} if self.pruning else {}
        return {"bool": {"should": [
            {"sparse_vector": {"field": f"{path_prefix}{field}", "query_vector": vector, **pruning}}
            for field, vector in by_field.items()]}}

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        if version.engine != "elasticsearch" or version.major_minor < (8, 11):
            return f"the sparse_vector field needs Elasticsearch 8.11+, not {version.engine} {version.number}"
        return None


class Seismic(VectorField):
    """OpenSearch's ``sparse_vector`` with the SEISMIC method (3.3+, neural-search): approximate retrieval.

    The English view is a SEISMIC field keyed by wordpiece id, LexEcho a ``rank_features``
    field (``seismic_keys``). A query's first phase is one ``neural_sparse`` clause of its
    English terms, which SEISMIC scores from its forward index with every English term (to
    the byte quantisation); its best hits are then rescored by adding their LexEcho dot
    product (``rank_feature`` clauses), so every returned score is the full two-view dot
    product and the first phase runs once. Filters restrict SEISMIC's candidates themselves.
    The quantisation ceilings are measured with the encoder on a sample of texts unless given.
    """

    type_name = "seismic"
    summary = "approximate search, OpenSearch 3.3+ with neural-search"
    keys = EnglishIdKeys()
    holds_passages = False
    approximate = True
    index_parameters = seismic_parameters.INDEX_PARAMETERS
    search_parameters = seismic_parameters.SEARCH_PARAMETERS

    def __init__(self, version: ClusterVersion, index: SeismicIndex = SeismicIndex(),
                 search: SeismicSearch = SeismicSearch(), filters: Sequence[dict] = ()) -> None:
        super().__init__(version)
        self.index, self.search, self.filters = index, search, tuple(filters)

    @classmethod
    def from_mapping(cls, version: ClusterVersion, mapping: dict) -> Seismic:
        properties = mapping.get("properties") or {}
        if (properties.get(M_FIELD) or {}).get("type") != "rank_features":
            raise MilcoOsError("this SEISMIC index keeps LexEcho in another layout than milco-os searches "
                               f"('{M_FIELD}' is not a rank_features field)",
                               hint="reindex it into a new index made by milco-os setup --vector-field seismic.")
        return cls(version, SeismicIndex.from_method((properties.get(EN_FIELD) or {}).get("method") or {}))

    @classmethod
    def created(cls, version: ClusterVersion, parameters: SeismicIndex | None = None) -> Seismic:
        parameters = parameters or SeismicIndex()
        since = seismic_parameters.ENGINES_SINCE
        if parameters.engine and version.major_minor < since:
            raise MilcoOsError(f"--seismic-engine needs OpenSearch {since[0]}.{since[1]}+ with neural-search, not "
                               f"{version.engine} {version.number}",
                               hint="leave --seismic-engine out: the cluster's only SEISMIC engine is its default.")
        return cls(version, parameters)

    @classmethod
    def needs_encoder(cls, given: Mapping[str, Any]) -> bool:
        return "ceilings" not in given

    @classmethod
    def prepared_parameters(cls, given: Mapping[str, Any], encoder: SparseEncoder | None = None,
                            texts: TextSample = tuple, prune: Any = "none",
                            documents: DocumentCount = lambda: None) -> SeismicIndex:
        if not {"expected_documents", "n_postings"} & set(given):
            known = documents()
            given = {**given, "expected_documents": known} if known else given
        parameters = SeismicIndex.from_flags(given)
        if not cls.needs_encoder(given):
            return parameters
        if encoder is None:
            raise ValueError("--vector-field seismic: give --model or --triton-url to measure the encoder's weights "
                             "for the quantisation ceilings, or --quantization-ceilings INGEST:SEARCH")
        return measured_ceilings(encoder, list(texts()), parameters, prune)

    def with_search(self, parameters: SeismicSearch | None, filters: Sequence[dict]) -> Seismic:
        return Seismic(self.version, self.index, parameters or SeismicSearch(), filters)

    def search_problem(self, *, two_phase: bool, neural_sparse: bool) -> str | None:
        if two_phase:
            return "SEISMIC retrieves approximately and rescores exactly already: leave out two-phase"
        if neural_sparse:
            return "SEISMIC indices are keyed by term id: leave the query style to the index (rank_feature)"
        return None

    def properties(self) -> dict[str, dict]:
        return {EN_FIELD: {"type": "sparse_vector", "method": self.index.method()},
                M_FIELD: RankFeatures(self.version).field_mapping()}

    def index_settings(self) -> dict:
        return {"sparse": True}

    def settings_needed_in_place(self) -> dict:
        return self.index_settings()

    def loading_settings(self) -> dict[str, str]:
        return dict(LOADING_SETTINGS)

    def query(self, terms: Sequence[QueryTerm], path_prefix: str = "") -> dict:
        english = [term for term in terms if term.field == EN_FIELD]
        if not english:  # nothing to search approximately: LexEcho alone, exactly
            return RankFeatures(self.version).query(terms, path_prefix)
        self._warn_above_search_ceiling(english)
        search = self.search
        parameters: dict = {"k": search.k, "top_n": search.top_n, "heap_factor": search.heap_factor}
        if self.filters:
            parameters["filter"] = {"bool": {"filter": list(self.filters)}}
        return {"neural_sparse": {path_prefix + EN_FIELD: {
            "query_tokens": {term.key: term.weight for term in english}, "method_parameters": parameters}}}

    def _warn_above_search_ceiling(self, english: Sequence[QueryTerm]) -> None:
        heaviest, ceiling = max(term.weight for term in english), self.index.ceilings.search
        if heaviest > ceiling:
            log.warning("query weight %.3g in English is above the index's quantisation ceiling %s: approximate "
                        "search counts it as %s", heaviest, ceiling, ceiling)

    def exact_rescore(self, terms: Sequence[QueryTerm], size: int) -> dict | None:
        # The first phase's scores are the English dot product already; its best hits gain their LexEcho part.
        lexecho = [term for term in terms if term.field != EN_FIELD]
        if not lexecho or len(lexecho) == len(terms):
            return None
        return {"window_size": max(self.search.k, size), "query": {
            "rescore_query": RankFeatures(self.version).query(lexecho), "query_weight": 1.0,
            "rescore_query_weight": 1.0, "score_mode": "total"}}

    def clipped(self, vector: SparseVector) -> bool:
        return bool((vector.en_weights > self.index.ceilings.ingest).any())

    def parameters_summary(self) -> str | None:
        ceilings = self.index.ceilings
        summary = f"seismic quantisation ceilings (ingest:search): English {ceilings.ingest}:{ceilings.search}"
        return summary + "".join(f", {name} {getattr(self.index, name)}" for name in (*ALGORITHM_PARAMETERS, "engine")
                                 if getattr(self.index, name) is not None)

    def clipping_warning(self, count: int) -> str:
        return (f"{count} document(s) have English weights above the index's quantisation ceiling "
                f"{self.index.ceilings.ingest}: approximate search counts those weights as the ceiling; reindex "
                "into an index with higher --quantization-ceilings to keep them")

    @classmethod
    def unsupported_reason(cls, version: ClusterVersion) -> str | None:
        if version.engine != "opensearch" or version.major_minor < (3, 3):
            return (f"SEISMIC sparse_vector fields need OpenSearch 3.3+ with neural-search, not "
                    f"{version.engine} {version.number}")
        return None


VECTOR_FIELDS: dict[str, type[VectorField]] = {cls.type_name: cls
                                               for cls in (RankFeatures, ElasticsearchSparseVector, Seismic)}
DEFAULT_VECTOR_FIELD = RankFeatures.type_name
# Every field name any strategy stores a vector in: what a document re-encoded from another index drops.
EVERY_VECTOR_FIELD = tuple(dict.fromkeys(name for cls in VECTOR_FIELDS.values() for name in cls.keys.fields))


def every_vector_path() -> tuple[str, ...]:
    """Every path any strategy stores a vector at, top level and in passages."""
    return tuple(path for name in EVERY_VECTOR_FIELD for path in (name, f"{PASSAGES_PATH}.{name}"))


def all_index_flags() -> dict[str, Flag]:
    """Every field type's index flags by the dataclass field they fill."""
    return {flag.field: flag for cls in VECTOR_FIELDS.values() if cls.index_parameters
            for flag in cls.index_parameters.flags}


def given_flags(given: Mapping[str, Any], flags: Mapping[str, Flag]) -> str:
    """The flags named by the fields of ``given``, as typed (``--n-postings``)."""
    return ", ".join(flags[name].option if name in flags else name for name in given)


def vector_field_class(type_name: str, version: ClusterVersion) -> type[VectorField]:
    """The strategy class for ``type_name`` on a cluster of ``version``; a clear error where it cannot work."""
    cls = VECTOR_FIELDS.get(type_name)
    if cls is None:
        raise MilcoOsError(f"unknown vector field type '{type_name}': choose one of {', '.join(VECTOR_FIELDS)}")
    reason = cls.unsupported_reason(version)
    if reason:
        raise MilcoOsError(reason, hint=f"use --vector-field {DEFAULT_VECTOR_FIELD}.")
    return cls


def vector_field(type_name: str, version: ClusterVersion, parameters: Any = None) -> VectorField:
    """The strategy for a new index (``parameters``: its type's index-parameter dataclass, None for defaults)."""
    return vector_field_class(type_name, version).created(version, parameters)
