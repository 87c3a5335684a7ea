"""An index as every stage sees it: its engine, its name and its vector-field strategy, resolved once."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from functools import cached_property
from typing import Any, Callable

from milco_os.engines import Engine, engine_for, plain
from milco_os.index.model_record import ModelRecord
from milco_os.index.vector_fields import (
    DEFAULT_VECTOR_FIELD,
    VectorField,
    vector_field,
    vector_field_class,
)

STAMP_PIPELINE = "milco-stamp"  # ingest_pipelines/milco-stamp.json, every new index's default pipeline


@dataclass(frozen=True)
class IndexHandle:
    """A MILCO index on one cluster; setup, ingest, reindex, enrich, search and eval all take one."""

    engine: Engine
    name: str
    field: VectorField
    vectors_in_source: bool = True  # False: the index does not store its vectors, it only indexes them
    # The pipeline milco-os's own bulk writes name: "_none" where the index's default pipeline is milco-stamp (what it
    # checks and stamps, these writes were checked and stamped with already), else None (the index's own runs).
    bulk_pipeline: str | None = None
    model: ModelRecord | None = None  # the model the index records (``index/model_record``), None before one
    # The index's uuid when a job began writing (``pinned``): a job checks it after each batch, so an index deleted
    # mid-job (and created again by the job's own writes, without the MILCO mapping) stops it. None: not checked.
    uuid: str | None = None

    @property
    def client(self) -> Any:
        """The opensearch-py or elasticsearch client of the index's cluster."""
        return self.engine.client

    @cached_property
    def document_count(self) -> int:
        """How many documents the index held when first asked (a size class, not a live count)."""
        return int(self.client.count(index=self.name)["count"])


def stored_mapping(engine: Engine, index: str) -> dict:
    """The mapping of ``index`` (of its first backing index when ``index`` is an alias)."""
    return next(iter(plain(engine.client.indices.get_mapping(index=index)).values()))["mappings"]


def milco_meta(mapping: dict) -> dict:
    """What milco-os records in a mapping's ``_meta`` (``milco_os``: vector field, model, a load's settings)."""
    return (mapping.get("_meta") or {}).get("milco_os") or {}


def update_milco_meta(engine: Engine, index: str, changed: Callable[[dict], dict]) -> None:
    """Write ``changed(record)`` as ``index``'s ``_meta.milco_os`` (the rest of ``_meta`` kept as it is)."""
    meta = dict(stored_mapping(engine, index).get("_meta") or {})
    meta["milco_os"] = changed(dict(meta.get("milco_os") or {}))
    engine.client.indices.put_mapping(index=index, body={"_meta": meta})


def has_milco_fields(engine: Engine, index: str) -> bool:
    """True when ``index`` exists with MILCO fields (its vector field and parameters are chosen already)."""
    return engine.client.indices.exists(index=index) and "milco_os" in (stored_mapping(engine, index).get("_meta")
                                                                        or {})


def stored_vector_type(mapping: dict) -> str:
    """The vector field type a mapping's ``_meta`` records (``rank_features`` before it recorded one)."""
    return milco_meta(mapping).get("vector_field_type", DEFAULT_VECTOR_FIELD)


def open_index(client: Any, name: str) -> IndexHandle:
    """A handle on the existing MILCO index ``name``, with the vector field its mapping records.

    ``client`` is an opensearch-py or elasticsearch client, or an ``Engine``.
    """
    engine = engine_for(client)
    mapping = stored_mapping(engine, name)
    field = stored_vector_field(engine, mapping)
    return IndexHandle(engine, name, field, stored_vectors_in_source(mapping, field),
                       stored_bulk_pipeline(engine, name), ModelRecord.from_mapping(mapping))


def stored_bulk_pipeline(engine: Engine, index: str) -> str | None:
    """``IndexHandle.bulk_pipeline`` of an existing index (of its first backing index when ``index`` is an alias)."""
    settings = next(iter(plain(engine.client.indices.get_settings(index=index)).values()))["settings"]["index"]
    return bulk_pipeline_for(settings.get("default_pipeline"))


def bulk_pipeline_for(default_pipeline: str | None) -> str | None:
    return "_none" if default_pipeline == STAMP_PIPELINE else None


def stored_vectors_in_source(mapping: dict, field: VectorField) -> bool:
    """Whether documents of an index with ``mapping`` keep their vector fields in ``_source`` (its ``excludes``
    may use wildcards)."""
    source = mapping.get("_source") or {}
    if source.get("enabled") is False:
        return False
    excludes = source.get("excludes") or ()
    return not any(fnmatchcase(path, pattern) for pattern in excludes for path in field.vector_paths())


def stored_vector_field(engine: Engine, mapping: dict) -> VectorField:
    """The vector-field strategy an existing index's mapping records, with its parameters."""
    return vector_field_class(stored_vector_type(mapping), engine.version).from_mapping(engine.version, mapping)


def chosen_vector_field(engine: Engine, mapping: dict | None, vector_type: str | None,
                        parameters: Any = None) -> VectorField:
    """The vector field an index is written with: the one ``mapping`` records (None: no index yet) unless another
    type is asked for, else a new ``vector_type`` field (``rank_features`` by default) with ``parameters`` (its
    type's index parameters)."""
    if mapping is not None and vector_type in (None, stored_vector_type(mapping)):
        return stored_vector_field(engine, mapping)
    return vector_field(vector_type or DEFAULT_VECTOR_FIELD, engine.version, parameters)


def pinned(handle: IndexHandle) -> IndexHandle:
    """``handle`` on the index its name means now, with its uuid: an alias's write index (its one index, where it
    names no write index), so that a job's writes stay in one index when the alias is moved during the job. An alias
    over several indices without a write index stays as it is (the cluster refuses writes through it)."""
    client = handle.client
    if client.indices.exists_alias(name=handle.name):
        indices = plain(client.indices.get_alias(name=handle.name))
        writers = [name for name, entry in indices.items() if entry["aliases"][handle.name].get("is_write_index")]
        target = writers or (list(indices) if len(indices) == 1 else [])
        if not target:
            return handle
        handle = replace(handle, name=target[0])
    return replace(handle, uuid=index_uuid(handle.engine, handle.name))


def index_uuid(engine: Engine, index: str) -> str | None:
    """The uuid of the index ``index`` names (None when it names several)."""
    settings = plain(engine.client.indices.get_settings(index=index, name="index.uuid"))
    return next(iter(settings.values()))["settings"]["index"]["uuid"] if len(settings) == 1 else None
