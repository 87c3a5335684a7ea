"""Vector-field strategies: each way of storing MILCO vectors owns its mapping, settings and query clauses.

A strategy is resolved once per index and cluster version (``vector_field``) and then
handed to setup, ingest, reindex, enrich, search and eval through an ``IndexHandle``.
Adding a way of storing vectors is one new class here, registered in ``VECTOR_FIELDS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Sequence

from milco_os.engines import ClusterVersion
from milco_os.errors import MilcoOsError

if TYPE_CHECKING:
    from milco_os.search.query_dsl import QueryTerm


class VectorField(ABC):
    """One field type holding one MILCO view per field, queried so that the score is the dot product."""

    type_name: ClassVar[str]

    def __init__(self, version: ClusterVersion) -> None:
        self.version = version

    def field_mapping(self) -> dict:
        """The mapping of each vector field (``milco_en``, ``milco_m``, and their passage copies)."""
        return {"type": self.type_name}

    def index_settings(self) -> dict:
        """Index settings the field type needs (``index.`` prefix left out)."""
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


VECTOR_FIELDS: dict[str, type[VectorField]] = {cls.type_name: cls
                                               for cls in (RankFeatures, ElasticsearchSparseVector)}
DEFAULT_VECTOR_FIELD = RankFeatures.type_name


def vector_field(type_name: str, version: ClusterVersion) -> VectorField:
    """The strategy for ``type_name`` on a cluster of ``version``; a clear error where it cannot work."""
    cls = VECTOR_FIELDS.get(type_name)
    if cls is None:
        raise MilcoOsError(f"unknown vector field type '{type_name}': choose one of {', '.join(VECTOR_FIELDS)}")
    reason = cls.unsupported_reason(version)
    if reason:
        raise MilcoOsError(reason, hint=f"use --vector-field {DEFAULT_VECTOR_FIELD}.")
    return cls(version)
