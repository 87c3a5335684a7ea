"""What sources yield and what the other stages report: neutral documents, unreadable input, outcomes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SourceDocument:
    """One document read from a source, with the position a checkpoint records once it is done.

    ``position`` is a line number (files) or a sort cursor (index slices); ``line`` names the
    input line in messages when there is one; ``routing`` is the shard routing it is written
    (and looked up) with; ``write_guard`` is ``(seq_no, primary_term)`` of a document read from
    the index it is written back to: it is written only if unchanged since.
    """

    position: object
    doc_id: str
    source: dict
    line: int | None = None
    routing: str | None = None
    write_guard: tuple[int, int] | None = None

    def where(self) -> str:
        return f"document {self.doc_id}" + (f" (line {self.line})" if self.line is not None else "")


@dataclass(frozen=True)
class UnreadableInput:
    """Input a source could not turn into a document (not UTF-8, not JSON, not an object)."""

    position: object
    line: int | None
    raw: str
    reason: str


SourceItem = SourceDocument | UnreadableInput
OutcomeKind = Literal["written", "skipped", "conflict", "refused"]


@dataclass(frozen=True)
class Outcome:
    """What became of one input: written (``no_text`` when without MILCO terms), skipped, a conflict, or refused.

    A refused input carries the dead-letter entry: its reason, the field at fault and the record; one the cluster
    refused, its ``cause`` too (status, error type and field, the same for every document refused alike).
    """

    kind: OutcomeKind
    line: int | None = None
    doc_id: str | None = None
    no_text: bool = False
    reason: str | None = None
    field: str | None = None
    record: object = None
    cause: str | None = None


def refused(item: SourceItem, reason: str, field: str | None = None) -> Outcome:
    """The outcome of an input that goes to the dead-letter file."""
    if isinstance(item, UnreadableInput):
        return Outcome("refused", item.line, None, reason=reason, record=item.raw)
    return Outcome("refused", item.line, item.doc_id, reason=reason, field=field, record=item.source)


def document_id(source: dict, id_field: str) -> str:
    """The document's id, or a content hash when it has none (re-ingesting never duplicates it)."""
    value = source.get(id_field)
    if value is not None and value != "":
        return str(value)
    canonical = json.dumps(source, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]
