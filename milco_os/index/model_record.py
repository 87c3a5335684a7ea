"""Which model an index's vectors come from: recorded in its mapping's ``_meta``, checked before every use.

Query weights of one checkpoint scored against document weights of another give wrong results
without any error, and two checkpoints writing into one index mix two vector spaces. So an
index records the model that wrote it (``_meta.milco_os.model``: the encoder's name and its
checkpoint fingerprint, ``encoding/fingerprint``), each document carries the fingerprint in
``milco_meta.model_revision``, and search, eval, ingest, reindex and enrich refuse an encoder
of another fingerprint unless told the two are compatible. An index written before indices
recorded a model is adopted by the first job that writes into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.fingerprint import short
from milco_os.errors import MilcoOsError

OVERRIDE_FLAG = "--allow-other-model"


class ModelMismatchError(MilcoOsError):
    """The index records another model than the encoder given."""

    exit_code = 12


@dataclass(frozen=True)
class ModelRecord:
    """A model as an index records it: the encoder's name and its checkpoint fingerprint (None: unknown)."""

    name: str
    fingerprint: str | None

    @classmethod
    def of(cls, encoder: SparseEncoder) -> ModelRecord:
        return cls(encoder.name, encoder.fingerprint)

    @classmethod
    def recordable(cls, encoder: SparseEncoder | None) -> ModelRecord | None:
        """What an index written by ``encoder`` records: its model, None when its fingerprint is unknown."""
        return cls.of(encoder) if encoder is not None and encoder.fingerprint else None

    @classmethod
    def from_mapping(cls, mapping: dict) -> ModelRecord | None:
        """The model a mapping's ``_meta`` records, None when it records none."""
        recorded = (mapping.get("_meta") or {}).get("milco_os", {}).get("model")
        if not isinstance(recorded, dict) or not recorded.get("name"):
            return None
        return cls(str(recorded["name"]), recorded.get("fingerprint") or None)

    def as_meta(self) -> dict[str, Any]:
        return {"name": self.name, "fingerprint": self.fingerprint}

    def describe(self) -> str:
        return f"{self.name} ({short(self.fingerprint)})"

    def same_vectors(self, other: ModelRecord) -> bool:
        """Whether vectors of ``other`` are known to score against vectors of this model: equal fingerprints."""
        return self.fingerprint is not None and self.fingerprint == other.fingerprint


def check_model(index_name: str, recorded: ModelRecord | None, given: ModelRecord, *,
                allow_other: bool = False) -> str | None:
    """A ModelMismatchError when ``recorded`` is known to differ from the ``given`` model (an encoder's, or the one
    the cluster encodes with), unless ``allow_other``; otherwise a notice for what could not be checked or was
    allowed, or None when the two match."""
    if recorded is None:
        return f"index '{index_name}' records no model yet: its vectors cannot be checked against {given.describe()}"
    if given.fingerprint is None or recorded.fingerprint is None:
        unknown = "the encoder's" if given.fingerprint is None else "the index's"
        return (f"{unknown} fingerprint is unknown: index '{index_name}' ({recorded.describe()}) cannot be checked "
                f"against {given.describe()}")
    if recorded.same_vectors(given):
        return None
    if allow_other:
        return (f"index '{index_name}' was written by {recorded.describe()}, used with {given.describe()} as "
                f"{OVERRIDE_FLAG} asks")
    raise ModelMismatchError(
        f"index '{index_name}' was written by {recorded.describe()}, not by {given.describe()}: their vectors do "
        "not score against each other",
        hint=f"use the model that wrote the index; move the index to the new model with 'milco-os reindex' (or "
             f"'milco-os enrich --re-encode'); or give {OVERRIDE_FLAG} if the two are known to be compatible.")
