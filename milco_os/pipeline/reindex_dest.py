"""A reindex's destination: a new index's body from the source's own mapping and settings, or MILCO fields
added to an existing index (enrich in place)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from milco_os.engines import Engine, plain
from milco_os.errors import ReindexError
from milco_os.index.fields import META_FIELD
from milco_os.index.handle import stored_mapping, stored_vector_field, stored_vectors_in_source
from milco_os.index.model_record import ModelRecord
from milco_os.index.setup import ensure_pipelines, incompatibilities, index_body
from milco_os.index.vector_fields import VectorField, every_vector_path
from milco_os.pipeline.encode_stage import MILCO_FIELDS

COPIED_SETTINGS = ("analysis", "similarity", "mapping", "max_result_window", "number_of_shards", "refresh_interval")


def dest_body(engine: Engine, source: str, field: VectorField, *, passages: bool = False,
              default_pipeline: bool = True, vectors_in_source: bool | None = None,
              model: ModelRecord | None = None) -> dict:
    """``mappings/`` merged with the source index's own mapping and copyable settings, recording ``model``.

    The source's own MILCO vector fields, of whichever strategy, give way to ``field``'s; its
    ``_source`` excludes stay, with the vector fields left out of ``_source`` unless
    ``vectors_in_source`` (None: as in the source index).
    """
    mapping = stored_mapping(engine, source)
    if vectors_in_source is None:
        vectors_in_source = stored_vectors_in_source(mapping, stored_vector_field(engine, mapping))
    body = index_body(field, passages=passages, shards=1, replicas=1, default_pipeline=default_pipeline,
                      vectors_in_source=vectors_in_source, model=model)
    own_excludes = [pattern for pattern in (mapping.get("_source") or {}).get("excludes") or ()
                    if not any(fnmatchcase(path, pattern) for path in every_vector_path())]
    excludes = own_excludes + body["mappings"].get("_source", {}).get("excludes", [])
    own = {name: spec for name, spec in mapping.get("properties", {}).items() if name not in MILCO_FIELDS}
    problems = [p for p in incompatibilities({"properties": own}, body) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{source}' has fields that clash with the MILCO fields: {'; '.join(problems)}.")
    properties = {**own, **body["mappings"]["properties"]}
    body["mappings"] = {**mapping, **body["mappings"], "properties": properties}
    body["mappings"]["_source"] = {**(mapping.get("_source") or {}), "excludes": excludes}
    if not excludes:
        del body["mappings"]["_source"]["excludes"]
    settings = next(iter(plain(engine.client.indices.get_settings(index=source)).values()))["settings"]["index"]
    body["settings"]["index"].update({key: settings[key] for key in COPIED_SETTINGS if key in settings})
    body["settings"]["index"]["number_of_replicas"] = settings.get("number_of_replicas", "1")
    return body


def ensure_milco_mapping(engine: Engine, index: str, field: VectorField) -> None:
    """Add the MILCO fields to an existing index's mapping (for enriching in place)."""
    ensure_pipelines(engine)
    wanted = index_body(field, passages=False, shards=1, replicas=1)
    mapping = stored_mapping(engine, index)
    problems = [p for p in incompatibilities(mapping, wanted) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{index}' cannot take MILCO fields: {'; '.join(problems)}.")
    needed_settings = field.settings_needed_in_place()
    if needed_settings:
        settings = next(iter(plain(engine.client.indices.get_settings(index=index)).values()))["settings"]["index"]
        missing = [f"index.{name}: {value}" for name, value in needed_settings.items()
                   if str(settings.get(name)).lower() != str(value).lower()]
        if missing:
            raise ReindexError(f"Index '{index}' cannot take {field.type_name} fields in place: it needs "
                               f"{', '.join(missing)}, set only when an index is created.",
                               hint="reindex into a new index with 'milco-os reindex --vector-field "
                                    f"{field.type_name}'.")
    milco = {key: wanted["mappings"]["properties"][key] for key in (*field.keys.fields, META_FIELD)}
    meta = dict(mapping.get("_meta") or {})  # the model recorded, if any, stays
    meta["milco_os"] = {**meta.get("milco_os", {}), **wanted["mappings"]["_meta"]["milco_os"]}
    engine.client.indices.put_mapping(index=index, body={"properties": milco, "_meta": meta})
