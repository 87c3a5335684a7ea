"""Creating MILCO indices from ``mappings/``, idempotently, and refusing incompatible ones."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from milco_os.encoding.contract import SparseEncoder
from milco_os.engines import Engine, ErrorKind, engine_for
from milco_os.errors import MilcoOsError
from milco_os.index.fields import EN_FIELD, M_FIELD, PASSAGES_PATH
from milco_os.index.handle import (
    IndexHandle,
    bulk_pipeline_for,
    chosen_vector_field,
    stored_bulk_pipeline,
    stored_mapping,
    stored_vectors_in_source,
    update_milco_meta,
)
from milco_os.index.model_record import ModelRecord, check_model
from milco_os.index.vector_fields import VectorField
from milco_os.resources import load_json, resource_dir

INDEX_MAPPING = "milco_index.json"
PASSAGES_MAPPING = "milco_passages.json"
PIPELINES = "ingest_pipelines"
# Refusals of the ``_nodes`` API after which indices go without the pipelines (a cluster or role without it).
UNLISTED_PROCESSORS = (ErrorKind.AUTHORIZATION, ErrorKind.BAD_REQUEST, ErrorKind.NOT_FOUND)

log = logging.getLogger(__name__)


class IncompatibleIndexError(MilcoOsError):
    exit_code = 6


def index_body(field: VectorField, *, passages: bool, shards: int, replicas: int,
               default_pipeline: bool = True, vectors_in_source: bool = True, model: ModelRecord | None = None) -> dict:
    """The index body of ``mappings/`` with ``field``'s mapping and settings (its type, and ``model`` where known,
    recorded in ``_meta``); without ``vectors_in_source``, ``_source`` leaves the vector fields out (they are
    indexed, not stored)."""
    if passages and not field.holds_passages:
        raise MilcoOsError(f"{field.type_name} indices hold one vector per document, not passages",
                           hint="use --vector-field rank_features for --passages.")
    body = load_json("mappings", PASSAGES_MAPPING if passages else INDEX_MAPPING)
    settings = body["settings"]["index"]
    settings.update({"number_of_shards": shards, "number_of_replicas": replicas, **field.index_settings()})
    if not default_pipeline:
        settings.pop("default_pipeline", None)
    for properties in (body["mappings"]["properties"],
                       body["mappings"]["properties"].get(PASSAGES_PATH, {}).get("properties", {})):
        if EN_FIELD in properties:
            del properties[EN_FIELD], properties[M_FIELD]
            properties.update(field.properties())
    meta = body["mappings"]["_meta"]["milco_os"]
    meta["vector_field_type"] = field.type_name
    if not vectors_in_source:
        body["mappings"]["_source"] = {"excludes": field.vector_paths(passages)}
    meta["key_codec"] = field.keys.codec
    if model is not None:
        meta["model"] = model.as_meta()
    return body


def field_types(properties: dict, prefix: str = "") -> dict[str, str]:
    """Flattened ``path -> type`` of a mapping's properties (objects without a type are walked into)."""
    types: dict[str, str] = {}
    for name, spec in properties.items():
        path = prefix + name
        if "type" in spec:
            types[path] = spec["type"]
        if "properties" in spec:
            types.update(field_types(spec["properties"], path + "."))
    return types


def incompatibilities(existing: dict, wanted: dict) -> list[str]:
    """Fields milco-os needs that the existing mapping lacks or types differently."""
    have = field_types(existing.get("properties", {}))
    need = field_types(wanted["mappings"]["properties"])
    return [f"field '{path}' is {have.get(path, 'missing')}, milco-os needs {kind}"
            for path, kind in need.items() if have.get(path) != kind]


def ensure_pipelines(client: Any) -> dict[str, str]:
    """Install every pipeline of ``ingest_pipelines/`` (named after its file).

    Name -> 'installed', 'unchanged', or 'skipped: ...' when the cluster lacks a processor it
    uses (Elasticsearch test builds ship no ingest-common) or does not say which it has (the ``_nodes`` API is
    refused: OpenSearch Serverless, a role without cluster monitor rights); indices then go without it.
    """
    engine = engine_for(client)
    paths = sorted(resource_dir(PIPELINES).glob("*.json"))
    try:
        available = engine.ingest_processors()
    except Exception as exc:
        if engine.classify(exc) not in UNLISTED_PROCESSORS:
            raise
        skipped = f"skipped: the cluster does not list its ingest processors ({engine.reason(exc)})"
        log.warning("%s: indices get no default pipeline, and writers other than milco-os go unchecked", skipped)
        return {path.stem: skipped for path in paths}
    outcomes = {}
    for path in paths:
        body = load_json(PIPELINES, path.name)
        needed = {next(iter(processor)) for processor in body["processors"]}
        if not needed <= available:
            outcomes[path.stem] = f"skipped: the cluster has no {', '.join(sorted(needed - available))} processor"
            continue
        if engine.get_pipeline(path.stem) == body:
            outcomes[path.stem] = "unchanged"
            continue
        engine.client.ingest.put_pipeline(id=path.stem, body=body)
        outcomes[path.stem] = "installed"
    return outcomes


def pipelines_installed(outcomes: dict[str, str]) -> bool:
    return all(not outcome.startswith("skipped") for outcome in outcomes.values())


def ensure_index(client: Any, index: str, *, passages: bool = False, shards: int = 1, replicas: int = 1,
                 vector_type: str | None = None, parameters: Any = None,
                 vectors_in_source: bool | None = None, model: ModelRecord | None = None) -> tuple[IndexHandle, str]:
    """Install the pipelines, then create ``index`` unless it exists: its handle, and 'created' or 'exists'.

    An existing index that lacks or mistypes a MILCO field is an error. ``vector_type``
    defaults to the existing index's, else ``rank_features``; ``parameters`` (the type's index parameters) and
    ``vectors_in_source`` (default: yes) and ``model`` (the model about to write it, recorded) apply to a new
    index; an existing index that stores its vectors otherwise than ``vectors_in_source`` asks is an error.
    """
    engine = engine_for(client)
    default_pipeline = pipelines_installed(ensure_pipelines(engine))
    exists = engine.client.indices.exists(index=index)
    existing = stored_mapping(engine, index) if exists else {}
    field = chosen_vector_field(engine, existing if exists else None, vector_type, parameters)
    body = index_body(field, passages=passages, shards=shards, replicas=replicas, default_pipeline=default_pipeline,
                      vectors_in_source=vectors_in_source is not False, model=model)
    if not exists:
        engine.client.indices.create(index=index, body=body)
        return IndexHandle(engine, index, field, vectors_in_source is not False,
                           bulk_pipeline_for(body["settings"]["index"].get("default_pipeline")), model), "created"
    stored_in_source = stored_vectors_in_source(existing, field)
    problems = incompatibilities(existing, body)
    if vectors_in_source is not None and vectors_in_source != stored_in_source:
        problems.append("its vectors are " + ("" if stored_in_source else "not ") + "kept in _source")
    if problems:
        raise IncompatibleIndexError(
            f"Index '{index}' exists but does not fit MILCO documents: {'; '.join(problems)}.",
            hint="choose another index name, or reindex into a new index with 'milco-os setup'.",
        )
    return IndexHandle(engine, index, field, stored_in_source, stored_bulk_pipeline(engine, index),
                       ModelRecord.from_mapping(existing)), "exists"


def record_model(engine: Engine, index: str, model: ModelRecord) -> None:
    """Record ``model`` in the ``_meta`` of ``index``'s mapping (the rest of ``_meta`` kept as it is)."""
    update_milco_meta(engine, index, lambda record: {**record, "model": model.as_meta()})


def claim_index(handle: IndexHandle, encoder: SparseEncoder, *, allow_other: bool = False
                ) -> tuple[IndexHandle, str | None]:
    """Before a job writes into ``handle`` with ``encoder``: a ModelMismatchError where the index records another
    model (unless ``allow_other``); an index that records none is adopted (the encoder's model recorded, when its
    fingerprint is known). The handle, and a notice of what was adopted, allowed or could not be checked."""
    given = ModelRecord.of(encoder)
    notice = check_model(handle.name, handle.model, given, allow_other=allow_other)
    if handle.model is None and given.fingerprint is not None:
        record_model(handle.engine, handle.name, given)
        return replace(handle, model=given), f"index '{handle.name}' recorded no model: adopted for {given.describe()}"
    return handle, notice
