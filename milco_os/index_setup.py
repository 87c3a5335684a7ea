"""Creating MILCO indices from ``mappings/``, idempotently, and refusing incompatible ones."""

from __future__ import annotations

from milco_os.errors import MilcoOsError
from milco_os.resources import load_json, resource_dir

INDEX_MAPPING = "milco_index.json"
PASSAGES_MAPPING = "milco_passages.json"
PIPELINES = "ingest_pipelines"


class IncompatibleIndexError(MilcoOsError):
    exit_code = 6


def index_body(*, passages: bool, shards: int, replicas: int) -> dict:
    body = load_json("mappings", PASSAGES_MAPPING if passages else INDEX_MAPPING)
    body["settings"]["index"].update({"number_of_shards": shards, "number_of_replicas": replicas})
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
    """Install every pipeline of ``ingest_pipelines/`` (named after its file); name -> 'installed' or 'unchanged'."""
    outcomes = {}
    for path in sorted(resource_dir(PIPELINES).glob("*.json")):
        body = load_json(PIPELINES, path.name)
        existing = client.ingest.get_pipeline(id=path.stem, ignore=404)
        if existing.get(path.stem) == body:
            outcomes[path.stem] = "unchanged"
            continue
        client.ingest.put_pipeline(id=path.stem, body=body)
        outcomes[path.stem] = "installed"
    return outcomes


def ensure_index(client, index: str, *, passages: bool = False, shards: int = 1, replicas: int = 1) -> str:
    """Install the pipelines, then create ``index`` unless it exists; 'created' or 'exists'.

    An existing index that lacks or mistypes a MILCO field is an error.
    """
    ensure_pipelines(client)
    body = index_body(passages=passages, shards=shards, replicas=replicas)
    if not client.indices.exists(index=index):
        client.indices.create(index=index, body=body)
        return "created"
    mapping = client.indices.get_mapping(index=index)
    existing = next(iter(mapping.values()))["mappings"]
    problems = incompatibilities(existing, body)
    if problems:
        raise IncompatibleIndexError(
            f"Index '{index}' exists but does not fit MILCO documents: {'; '.join(problems)}.",
            hint="choose another index name, or reindex into a new index with 'milco-os setup'.",
        )
    return "exists"
