"""What a cluster's MILCO indices hold: each one's vector field, recorded model and documents per model."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from milco_os.encoding.fingerprint import short
from milco_os.engines import Engine, plain
from milco_os.index.fields import META_FIELD
from milco_os.index.handle import stored_vector_type
from milco_os.index.model_record import ModelRecord

MODELS_SHOWN = 50  # distinct model names (and fingerprints of each) counted per index
UNKNOWN = ""  # the fingerprint of documents written before documents carried one, and the model of those not encoded


@dataclass(frozen=True)
class IndexInventory:
    """One MILCO index: its documents, vector field, recorded model, and documents by (model name, fingerprint)."""

    name: str
    documents: int
    vector_field: str
    model: ModelRecord | None
    by_model: dict[tuple[str, str], int]

    @property
    def others(self) -> int:
        """Documents of a fingerprint other than the recorded one (all of known fingerprints, when none is)."""
        recorded = self.model.fingerprint if self.model else None
        return sum(count for (_, fingerprint), count in self.by_model.items()
                   if fingerprint != UNKNOWN and fingerprint != recorded)

    @property
    def unknown(self) -> int:
        """Documents encoded without a fingerprint."""
        return sum(count for (name, fingerprint), count in self.by_model.items() if name and fingerprint == UNKNOWN)

    @property
    def not_encoded(self) -> int:
        """Documents without MILCO vectors (an index being enriched)."""
        return sum(count for (name, _), count in self.by_model.items() if not name)

    def verdict(self) -> str:
        """One line: consistent, mixed (with how to repair it) or not yet recorded."""
        if self.model is None:
            return "records no model: the next ingest, reindex or enrich records it"
        if self.others:
            return (f"mixed: {self.others} documents of another model; repair with 'milco-os enrich --index "
                    f"{self.name} --re-encode' (the recorded model) or reindex into a new index")
        if self.unknown:
            return f"{self.unknown} documents written before documents recorded a fingerprint"
        return "consistent"

    def models_line(self) -> str:
        return ", ".join((f"{name} ({short(fingerprint or None)})" if name else "not encoded") + f": {count}"
                         for (name, fingerprint), count in sorted(self.by_model.items(), key=lambda kv: -kv[1]))


def milco_mappings(engine: Engine, pattern: str) -> dict[str, dict]:
    """index -> mapping of the indices matching ``pattern`` that hold MILCO fields, by name."""
    mappings = plain(engine.client.indices.get_mapping(index=pattern))
    return {name: body["mappings"] for name, body in sorted(mappings.items())
            if "milco_os" in (body["mappings"].get("_meta") or {}) and fnmatchcase(name, "[!.]*")}


def inventory(engine: Engine, pattern: str = "*") -> list[IndexInventory]:
    """Every MILCO index matching ``pattern`` (hidden indices left out)."""
    found = []
    for name, mapping in milco_mappings(engine, pattern).items():
        body = {"size": 0, "track_total_hits": True, "aggs": {"models": {
            "terms": {"field": f"{META_FIELD}.model", "missing": "", "size": MODELS_SHOWN},
            "aggs": {"fingerprints": {"terms": {"field": f"{META_FIELD}.model_revision", "missing": UNKNOWN,
                                                "size": MODELS_SHOWN}}}}}}
        response = plain(engine.client.search(index=name, body=body))
        by_model = {(model["key"], fingerprint["key"]): fingerprint["doc_count"]
                    for model in response["aggregations"]["models"]["buckets"]
                    for fingerprint in model["fingerprints"]["buckets"]}
        found.append(IndexInventory(name, int(response["hits"]["total"]["value"]), stored_vector_type(mapping),
                                    ModelRecord.from_mapping(mapping), by_model))
    return found
