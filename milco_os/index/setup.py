"""Creating MILCO indices from ``mappings/``, idempotently, and refusing incompatible ones."""

from __future__ import annotations

import functools

from milco_os.engines import engine_for, plain
from milco_os.errors import MilcoOsError
from milco_os.index.fields import PASSAGES_PATH, EN_FIELD, M_FIELD
from milco_os.resources import load_json, resource_dir

INDEX_MAPPING = "milco_index.json"
PASSAGES_MAPPING = "milco_passages.json"
PIPELINES = "ingest_pipelines"
RANK_FEATURES = "rank_features"
SPARSE_VECTOR = "sparse_vector"
VECTOR_TYPES = (RANK_FEATURES, SPARSE_VECTOR)


class IncompatibleIndexError(MilcoOsError):
    exit_code = 6


def index_body(*, passages: bool, shards: int, replicas: int, vector_type: str = RANK_FEATURES,
               default_pipeline: bool = True, sparse_vector_options: dict | None = None) -> dict:
    """The index body of ``mappings/`` with the vector fields as ``vector_type`` (recorded in ``_meta``)."""
    if vector_type not in VECTOR_TYPES:
        raise MilcoOsError(f"unknown vector field type '{vector_type}': choose one of {', '.join(VECTOR_TYPES)}")
    body = load_json("mappings", PASSAGES_MAPPING if passages else INDEX_MAPPING)
    body["settings"]["index"].update({"number_of_shards": shards, "number_of_replicas": replicas})
    if not default_pipeline:
        body["settings"]["index"].pop("default_pipeline", None)
    vector_spec = {"type": vector_type, **(sparse_vector_options or {} if vector_type == SPARSE_VECTOR else {})}
    for properties in (body["mappings"]["properties"],
                       body["mappings"]["properties"].get(PASSAGES_PATH, {}).get("properties", {})):
        for field in (EN_FIELD, M_FIELD):
            if field in properties:
                properties[field] = dict(vector_spec)
    body["mappings"]["_meta"]["milco_os"]["vector_field_type"] = vector_type
    return body


def cluster_index_body(client, *, passages: bool, shards: int, replicas: int, vector_type: str = RANK_FEATURES,
                       default_pipeline: bool = True) -> dict:
    """``index_body`` for this cluster: ``sparse_vector`` only where the engine has it, unpruned where it prunes,
    kept in ``_source`` where it would be left out."""
    if vector_type != SPARSE_VECTOR:
        return index_body(passages=passages, shards=shards, replicas=replicas, vector_type=vector_type,
                          default_pipeline=default_pipeline)
    version = engine_for(client).version
    if version.engine != "elasticsearch" or version.major_minor < (8, 11):
        raise MilcoOsError(f"the sparse_vector field needs Elasticsearch 8.11+, not {version.engine} "
                           f"{version.number}", hint="use --vector-field rank_features.")
    # 8.19+ prunes frequent tokens at query time by default; MILCO scores the full dot product.
    options = {"index_options": {"prune": False}} if version.major_minor >= (8, 19) else None
    body = index_body(passages=passages, shards=shards, replicas=replicas, vector_type=vector_type,
                      default_pipeline=default_pipeline, sparse_vector_options=options)
    if version.major_minor >= (9, 1):
        # 9.1+ leaves vectors out of _source by default; explain, reindex and enrich read them from there.
        body["settings"]["index"]["mapping.exclude_source_vectors"] = False
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


def ensure_pipelines(client) -> dict[str, str]:
    """Install every pipeline of ``ingest_pipelines/`` (named after its file).

    Name -> 'installed', 'unchanged', or 'skipped: ...' when the cluster lacks a processor it
    uses (Elasticsearch test builds ship no ingest-common); indices then go without it.
    """
    engine = engine_for(client)
    available: set[str] | None = None
    outcomes = {}
    for path in sorted(resource_dir(PIPELINES).glob("*.json")):
        body = load_json(PIPELINES, path.name)
        needed = {next(iter(processor)) for processor in body["processors"]}
        available = engine.ingest_processors() if available is None else available
        if not needed <= available:
            outcomes[path.stem] = f"skipped: the cluster has no {', '.join(sorted(needed - available))} processor"
            continue
        if engine.get_pipeline(path.stem) == body:
            outcomes[path.stem] = "unchanged"
            continue
        client.ingest.put_pipeline(id=path.stem, body=body)
        outcomes[path.stem] = "installed"
    return outcomes


def pipelines_installed(outcomes: dict[str, str]) -> bool:
    return all(not outcome.startswith("skipped") for outcome in outcomes.values())


@functools.lru_cache(maxsize=256)
def stored_vector_type(client, index: str) -> str:
    """The vector field type an index was set up with (its mapping's ``_meta``; rank_features before it said)."""
    mappings = next(iter(plain(client.indices.get_mapping(index=index)).values()))["mappings"]
    return (mappings.get("_meta") or {}).get("milco_os", {}).get("vector_field_type", RANK_FEATURES)


def ensure_index(client, index: str, *, passages: bool = False, shards: int = 1, replicas: int = 1,
                 vector_type: str | None = None) -> str:
    """Install the pipelines, then create ``index`` unless it exists; 'created' or 'exists'.

    An existing index that lacks or mistypes a MILCO field is an error. ``vector_type``
    defaults to the existing index's, else ``rank_features``.
    """
    default_pipeline = pipelines_installed(ensure_pipelines(client))
    if not client.indices.exists(index=index):
        body = cluster_index_body(client, passages=passages, shards=shards, replicas=replicas,
                                  vector_type=vector_type or RANK_FEATURES, default_pipeline=default_pipeline)
        client.indices.create(index=index, body=body)
        return "created"
    existing = next(iter(plain(client.indices.get_mapping(index=index)).values()))["mappings"]
    wanted_type = vector_type or (existing.get("_meta") or {}).get("milco_os", {}).get("vector_field_type",
                                                                                      RANK_FEATURES)
    body = index_body(passages=passages, shards=shards, replicas=replicas, vector_type=wanted_type)
    problems = incompatibilities(existing, body)
    if problems:
        raise IncompatibleIndexError(
            f"Index '{index}' exists but does not fit MILCO documents: {'; '.join(problems)}.",
            hint="choose another index name, or reindex into a new index with 'milco-os setup'.",
        )
    return "exists"
