"""The ingest pipeline: source -> encode stage -> bulk sink, then outcomes -> summary, dead letters, checkpoint.

Semantics, per document:
- text missing, empty or blank: written without MILCO terms, counted as ``no_text``;
- text a list of strings: joined with newlines;
- unreadable input (not UTF-8, not JSON, not an object), or text of any other type:
  not written; one line in the dead-letter file (line, id, field, reason, record);
- with ``passages``: the text is split into token windows, one vector per window in the
  nested ``milco_passages`` field; a document then scores as its best passage;
- a vector with a weight that is not a positive finite number (a faulty custom encoder):
  not written; dead-lettered naming the view's field;
- ``skip_existing``: a document whose stored ``milco_meta`` matches model, pruning and text
  is skipped (a document read with a write guard carries its stored meta; others are looked up).
Encoding batch N+1 (this thread) overlaps the bulk write of batch N (one writer thread). A
batch's outcomes are recorded here, in order, once its write returned: the summary has
one owner, and the ``on_batch_done`` checkpointer only ever sees what was written.
"""

from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.passages import split_passages
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector
from milco_os.engines import plain
from milco_os.errors import MilcoOsError
from milco_os.index.fields import (
    EN_FIELD,
    M_FIELD,
    META_FIELD,
    PASSAGES_PATH,
    InvalidVectorError,
    check_vector,
    vector_fields,
)
from milco_os.index.handle import IndexHandle
from milco_os.pipeline.bulk_writer import BulkResult, BulkWriter
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import Outcome, SourceDocument, SourceItem, UnreadableInput, refused

MILCO_FIELDS = (EN_FIELD, M_FIELD, PASSAGES_PATH)
# "failed to parse field [year] of type [long] in document with id '7'"
REFUSED_FIELD = re.compile(r"field \[([^\]]+)\]")


@dataclass(frozen=True)
class IngestOptions:
    text_field: str = "text"
    batch_size: int = 64
    prune: PruneSpec = PruneSpec()
    max_length: int | None = None
    model_name: str = "milco"
    model_revision: str = ""
    passages: bool = False
    passage_tokens: int = 512
    passage_overlap: int = 0
    skip_existing: bool = False
    unavailable_timeout_s: float = 120.0


@dataclass(frozen=True)
class BatchReport:
    """One finished batch: the position of its last input (all done up to there) and what became of them."""

    last_position: object
    read: int
    written: int
    skipped: int
    no_text: int
    failed: int
    conflicts: int

    @classmethod
    def of(cls, last_position: object, outcomes: list[Outcome]) -> BatchReport:
        kinds = [outcome.kind for outcome in outcomes]
        return cls(last_position, len(outcomes), kinds.count("written"), kinds.count("skipped"),
                   sum(1 for outcome in outcomes if outcome.no_text), kinds.count("refused"), kinds.count("conflict"))


@dataclass
class IngestSummary:
    read: int = 0
    written: int = 0
    no_text: int = 0
    failed: int = 0
    skipped: int = 0
    conflicts: int = 0
    duplicate_ids: int = 0
    rejected_429: int = 0
    unavailable_retries: int = 0
    elapsed_s: float = 0.0
    encode_s: float = 0.0
    bulk_s: float = 0.0

    def add(self, report: BatchReport) -> None:
        self.read += report.read
        self.written += report.written
        self.skipped += report.skipped
        self.no_text += report.no_text
        self.failed += report.failed
        self.conflicts += report.conflicts

    def merge(self, other: IngestSummary) -> None:
        """Add another run's figures (elapsed time excepted)."""
        for name in ("read", "written", "no_text", "failed", "skipped", "conflicts", "duplicate_ids",
                     "rejected_429", "unavailable_retries", "encode_s", "bulk_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return {"read": self.read, "written": self.written, "skipped": self.skipped, "no_text": self.no_text,
                "failed": self.failed, "conflicts": self.conflicts, "duplicate_ids": self.duplicate_ids,
                "rejected_429_retried": self.rejected_429, "unavailable_retries": self.unavailable_retries,
                "elapsed_s": round(self.elapsed_s, 3),
                "encode_s": round(self.encode_s, 3), "bulk_s": round(self.bulk_s, 3)}


@dataclass
class PreparedBatch:
    """A batch after the encode stage: bulk actions for the documents to write, outcomes for the rest."""

    last_position: object
    actions: list[dict]
    written: list[tuple[SourceDocument, bool]]  # per action: its document, and whether it had no text
    settled: list[Outcome]
    encode_s: float


def document_text(source: dict, text_field: str) -> str | None:
    """The text to encode ('' when missing); None when the field holds something that is not text."""
    value = source.get(text_field)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "\n".join(value)
    return None


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EncodeStage:
    """Documents -> MILCO bulk actions for one index; settles what is refused or skipped before writing."""

    def __init__(self, index: IndexHandle, encoder: SparseEncoder, options: IngestOptions) -> None:
        if options.passages and encoder.tokenizer is None:
            raise MilcoOsError("passages are split with the model's tokenizer, which this encoder does not have",
                               hint="encode in process (--model DIR) to use --passages.")
        self.index, self.encoder, self.options = index, encoder, options

    def meta(self, text: str, encoded_at: str) -> dict:
        return {"model": self.options.model_name, "model_revision": self.options.model_revision,
                "prune": str(self.options.prune), "text_hash": text_hash(text), "encoded_at": encoded_at}

    def prepare(self, batch: list[SourceItem]) -> PreparedBatch:
        started = time.perf_counter()
        settled: list[Outcome] = []
        texts: list[tuple[SourceDocument, str]] = []
        for item in batch:
            text = None if isinstance(item, UnreadableInput) else document_text(item.source, self.options.text_field)
            if text is None:
                settled.append(self._unreadable(item))
            else:
                texts.append((item, text))
        if self.options.skip_existing and texts:
            texts = self._without_unchanged(texts, settled)
        actions, written = self._encode(texts, settled) if texts else ([], [])
        return PreparedBatch(batch[-1].position, actions, written, settled, time.perf_counter() - started)

    def _unreadable(self, item: SourceItem) -> Outcome:
        if isinstance(item, UnreadableInput):
            return refused(item, item.reason)
        field = self.options.text_field
        return refused(item, f"{item.where()}: field '{field}' is a {type(item.source[field]).__name__}, "
                             "not a string or a list of strings", field)

    def _without_unchanged(self, texts: list[tuple[SourceDocument, str]],
                           settled: list[Outcome]) -> list[tuple[SourceDocument, str]]:
        """The documents whose stored milco_meta does not already match model, pruning and text."""
        stored = {doc.doc_id: doc.source.get(META_FIELD) or {} for doc, _ in texts if doc.write_guard}
        lookup = [doc.doc_id for doc, _ in texts if not doc.write_guard]
        if lookup:
            found = plain(self.index.client.mget(index=self.index.name, body={"ids": lookup},
                                                 _source_includes=[META_FIELD]))["docs"]
            stored.update({doc["_id"]: (doc.get("_source") or {}).get(META_FIELD) or {}
                           for doc in found if doc.get("found")})
        kept = []
        for doc, text in texts:
            meta, wanted = stored.get(doc.doc_id) or {}, self.meta(text, "")
            if all(meta.get(key) == wanted[key] for key in ("model", "model_revision", "prune", "text_hash")):
                settled.append(Outcome("skipped", doc.line, doc.doc_id))
            else:
                kept.append((doc, text))
        return kept

    def _encode(self, texts: list[tuple[SourceDocument, str]],
                settled: list[Outcome]) -> tuple[list[dict], list[tuple[SourceDocument, bool]]]:
        encoded = self._passage_fields([t for _, t in texts]) if self.options.passages else \
            [self._fields(vector) for vector in self.encoder.encode_documents(
                [t for _, t in texts], max_length=self.options.max_length, prune=self.options.prune)]
        encoded_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        actions, written = [], []
        for (doc, text), fields in zip(texts, encoded):
            if isinstance(fields, InvalidVectorError):
                settled.append(refused(doc, f"{doc.where()}: the encoder's vector is not storable: {fields}",
                                       fields.field))
                continue
            no_text = not text.strip()
            # "_id" is metadata: it names the document and cannot also be a field of it.
            source = {key: value for key, value in doc.source.items() if key not in MILCO_FIELDS + ("_id",)}
            source.update({} if no_text else fields)
            source[META_FIELD] = self.meta(text, encoded_at)
            action = {"_index": self.index.name, "_id": doc.doc_id, "_source": source}
            if doc.write_guard:
                # The document as read, with its MILCO fields replaced whole, written only if unchanged since.
                action.update(if_seq_no=doc.write_guard[0], if_primary_term=doc.write_guard[1])
            actions.append(action)
            written.append((doc, no_text))
        return actions, written

    def _fields(self, vector: SparseVector) -> dict | InvalidVectorError:
        """The document's MILCO fields, or why the vector cannot be stored."""
        try:
            check_vector(vector, self.encoder.vocabulary)
        except InvalidVectorError as exc:
            return exc
        return vector_fields(vector, self.encoder.vocabulary)

    def _passage_fields(self, texts: list[str]) -> list[dict | InvalidVectorError]:
        """Per text, a ``milco_passages`` list with one vector per token window."""
        split = [split_passages(self.encoder.tokenizer, text, max_tokens=self.options.passage_tokens,
                                overlap=self.options.passage_overlap) if text.strip() else [] for text in texts]
        flat = [passage for passages in split for passage in passages]
        vectors = iter(self.encoder.encode_documents([p.text for p in flat], max_length=self.options.passage_tokens,
                                                     prune=self.options.prune))
        documents: list[dict | InvalidVectorError] = []
        for passages in split:
            fields = [(p, self._fields(next(vectors))) for p in passages]
            invalid = next((f for _, f in fields if isinstance(f, InvalidVectorError)), None)
            documents.append(invalid or {PASSAGES_PATH: [{"text": p.text, "start_token": p.start_token, **f}
                                                         for p, f in fields]})
        return documents


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
        return Outcome("refused", doc.line, doc.doc_id,
                       reason=f"{doc.where()}: the cluster refused it (status {result.status}"
                              + (f", field '{field}'" if field else "") + f"): {detail}",
                       field=field, record=written_source)


class Ingestor:
    """Writes the documents of a source into an index with MILCO vectors; one instance per run.

    ``on_progress`` gets the number of inputs finished, ``on_batch_done`` each finished batch's
    report (a checkpointer), both from the thread that calls ``run``.
    """

    def __init__(self, index: IndexHandle, encoder: SparseEncoder, options: IngestOptions,
                 dead_letters: DeadLetters, *, on_progress: Callable[[int], None] = lambda n: None,
                 on_batch_done: Callable[[BatchReport], None] = lambda report: None) -> None:
        self.stage = EncodeStage(index, encoder, options)
        self.writer = BulkWriter(index.engine, unavailable_timeout_s=options.unavailable_timeout_s)
        self.sink = BulkSink(self.writer)
        self.options = options
        self.dead_letters = dead_letters
        self.on_progress = on_progress
        self.on_batch_done = on_batch_done
        self.summary = IngestSummary()

    def run(self, source: Iterable[SourceItem]) -> IngestSummary:
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="milco-bulk") as pool:
                pending: tuple[PreparedBatch, Future] | None = None
                for batch in batches(source, self.options.batch_size):
                    prepared = self.stage.prepare(batch)
                    if pending is not None:
                        self._finish(*pending)
                    pending = (prepared, pool.submit(self.sink.write, prepared))
                if pending is not None:
                    self._finish(*pending)
        finally:
            self.summary.duplicate_ids = getattr(getattr(source, "duplicates", None), "count", 0)
            self.summary.rejected_429 = self.writer.counters.rejected_429
            self.summary.unavailable_retries = self.writer.counters.unavailable_retries
            self.summary.elapsed_s = time.perf_counter() - started
        return self.summary

    def _finish(self, prepared: PreparedBatch, write: Future) -> None:
        """Record a batch once its write returned: dead letters, summary, progress, then the checkpoint."""
        written, bulk_s = write.result()
        outcomes = prepared.settled + written
        for outcome in outcomes:
            if outcome.kind == "refused":
                self.dead_letters.add(outcome)
        report = BatchReport.of(prepared.last_position, outcomes)
        self.summary.add(report)
        self.summary.encode_s += prepared.encode_s
        self.summary.bulk_s += bulk_s
        self.on_progress(report.read)
        self.on_batch_done(report)


def batches(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    batch: list[SourceItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
