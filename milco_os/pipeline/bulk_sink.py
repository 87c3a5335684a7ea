"""The bulk sink: writes a prepared batch and turns each document's bulk result into an outcome."""

from __future__ import annotations

import re
import time

from milco_os.engines import plain
from milco_os.index.fields import META_FIELD
from milco_os.index.handle import IndexHandle
from milco_os.pipeline.bulk_writer import BulkResult, BulkWriter
from milco_os.pipeline.documents import Outcome, SourceDocument
from milco_os.pipeline.encode_stage import PreparedBatch

# "failed to parse field [year] of type [long] in document with id '7'"
REFUSED_FIELD = re.compile(r"field \[([^\]]+)\]")


class BulkSink:
    """Writes a prepared batch and returns one outcome per action, paired by position."""

    def __init__(self, writer: BulkWriter) -> None:
        self.writer = writer

    def write(self, batch: PreparedBatch) -> tuple[list[Outcome], float]:
        """The outcomes, and the seconds the write took."""
        started = time.perf_counter()
        results = self.writer.write(batch.actions) if batch.actions else []
        outcomes = [self._outcome(doc, no_text, action["_source"], result)
                    for (doc, no_text), action, result in zip(batch.written, batch.actions, results)]
        return outcomes, time.perf_counter() - started

    @staticmethod
    def _outcome(doc: SourceDocument, no_text: bool, written_source: dict, result: BulkResult) -> Outcome:
        if result.ok:
            return Outcome("written", doc.line, doc.doc_id, no_text=no_text)
        if result.status == 409:
            # Changed since it was read: its stale vector is not written; a re-run picks it up.
            return Outcome("conflict", doc.line, doc.doc_id)
        error = result.error
        reason = error.get("reason", error) if isinstance(error, dict) else error
        caused_by = error.get("caused_by", {}).get("reason") if isinstance(error, dict) else None
        named = REFUSED_FIELD.search(str(reason))
        field = named.group(1) if named else None
        detail = f"{reason}" + (f": {caused_by}" if caused_by else "")
        refusal = "it could not be sent" if result.status is None else \
            f"the cluster refused it (status {result.status}" + (f", field '{field}'" if field else "") + ")"
        kind = error.get("type", "error") if isinstance(error, dict) else type(error).__name__
        cause = f"status {result.status}, {kind}" + (f", field '{field}'" if field else "")
        return Outcome("refused", doc.line, doc.doc_id, reason=f"{doc.where()}: {refusal}: {detail}", field=field,
                       record=written_source, cause=cause)


def stored_meta(index: IndexHandle, keys: list[tuple[str, str | None]]) -> dict[str, dict]:
    """The stored ``milco_meta`` of the documents of ``index`` with these (id, routing) keys, by id."""
    docs = [{"_id": doc_id, **({"routing": routing} if routing is not None else {})} for doc_id, routing in keys]
    found = plain(index.client.mget(index=index.name, body={"docs": docs}, _source_includes=[META_FIELD]))["docs"]
    return {doc["_id"]: (doc.get("_source") or {}).get(META_FIELD) or {} for doc in found if doc.get("found")}
