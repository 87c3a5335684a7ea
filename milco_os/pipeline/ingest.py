"""The ingest bridge: documents -> batched encode -> prune -> bulk write, nothing lost silently.

Semantics, per document:
- text missing, empty or blank: written without MILCO terms, counted as ``no_text``;
- text a list of strings: joined with newlines;
- a line that is not valid UTF-8 or not a JSON object, or text of any other type:
  not written; one line in the dead-letter file (line, id, field, reason, record);
- with ``passages``: the text is split into token windows, one vector per window in the
  nested ``milco_passages`` field; a document then scores as its best passage;
- id missing: a deterministic id from the record's content (so re-ingesting the same
  file never duplicates it); a duplicate id within one run: the last one wins, counted
  and reported;
- a vector with a weight that is not a positive finite number (a faulty custom encoder):
  not written; dead-lettered naming the view's field.
Encoding batch N+1 overlaps the bulk write of batch N. Bulk rejections (429) and short
cluster outages are ridden out by ``BulkWriter``; documents the cluster refuses go to
the dead-letter file, with the field the cluster names when it names one.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from milco_os.pipeline.bulk_writer import BulkResult, BulkWriter
from milco_os.engines import engine_for, plain
from milco_os.index.fields import PASSAGES_PATH, EN_FIELD, M_FIELD, META_FIELD, InvalidVectorError, check_vector, vector_fields
from milco_os.encoding.passages import split_passages
from milco_os.encoding.pruning import PruneSpec
from milco_os.search.searcher import Encoder

MILCO_FIELDS = (EN_FIELD, M_FIELD, PASSAGES_PATH)
# "failed to parse field [year] of type [long] in document with id '7'"
REFUSED_FIELD = re.compile(r"field \[([^\]]+)\]")


@dataclass(frozen=True)
class Record:
    """One input document: where it came from, and either its parsed source or why it was refused."""

    line: int
    source: dict | None = None
    raw: str | None = None
    error: str | None = None
    doc_id: str | None = None
    seq_no: int | None = None
    primary_term: int | None = None
    cursor: object = None


@dataclass(frozen=True)
class IngestOptions:
    index: str
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 64
    prune: PruneSpec = PruneSpec()
    max_length: int | None = None
    model_name: str = "milco"
    model_revision: str = ""
    passages: bool = False
    passage_tokens: int = 512
    passage_overlap: int = 0
    in_place: bool = False
    skip_existing: bool = False
    unavailable_timeout_s: float = 120.0


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
    seen_ids: dict[str, int] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, float]:
        return {"read": self.read, "written": self.written, "skipped": self.skipped, "no_text": self.no_text,
                "failed": self.failed, "conflicts": self.conflicts, "duplicate_ids": self.duplicate_ids,
                "rejected_429_retried": self.rejected_429, "unavailable_retries": self.unavailable_retries,
                "elapsed_s": round(self.elapsed_s, 3),
                "encode_s": round(self.encode_s, 3), "bulk_s": round(self.bulk_s, 3)}


class DeadLetters:
    """Refused documents as JSON lines: line, id, field, reason, and the original record.

    ``on_entry`` gets each reason as one line (the CLI prints it).
    """

    def __init__(self, stream: TextIO | None, on_entry: Callable[[str], None] = lambda reason: None) -> None:
        self.stream = stream
        self.on_entry = on_entry
        self.count = 0

    def add(self, *, line: int | None, doc_id: str | None, field_name: str | None, reason: str,
            record: object) -> None:
        self.count += 1
        self.on_entry(reason)
        if self.stream is not None:
            entry = {"line": line, "id": doc_id, "field": field_name, "reason": reason, "record": record}
            self.stream.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            self.stream.flush()


def read_jsonl(path: Path) -> Iterator[Record]:
    """Records of a JSONL file; undecodable or unparsable lines become refused records."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield Record(number, raw=raw.decode("utf-8", "backslashreplace").rstrip("\n"),
                             error=f"line {number} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            try:
                source = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Record(number, raw=text.rstrip("\n"), error=f"line {number} is not valid JSON ({exc.msg})")
                continue
            if not isinstance(source, dict):
                yield Record(number, raw=text.rstrip("\n"),
                             error=f"line {number} is a JSON {type(source).__name__}, not an object")
                continue
            yield Record(number, source=source)


def records_from_dicts(documents: Iterable[dict]) -> Iterator[Record]:
    for number, document in enumerate(documents, start=1):
        if isinstance(document, dict):
            yield Record(number, source=document)
        else:
            yield Record(number, raw=repr(document), error=f"document {number} is {type(document).__name__}, "
                                                           "not a dict")


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


def document_id(source: dict, id_field: str) -> str:
    """The document's id, or a content hash when it has none."""
    value = source.get(id_field)
    if value is not None and value != "":
        return str(value)
    canonical = json.dumps(source, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Ingestor:
    """Writes records into an index with MILCO vectors; one instance per run."""

    def __init__(self, client, encoder: Encoder, options: IngestOptions, dead_letters: DeadLetters,
                 on_progress: Callable[[int], None] = lambda n: None,
                 on_batch_done: Callable[[Record], None] = lambda last: None,
                 on_notice: Callable[[str], None] = lambda line: None) -> None:
        self.client = client
        self.encoder = encoder
        self.options = options
        self.dead_letters = dead_letters
        self.on_progress = on_progress
        self.on_batch_done = on_batch_done
        self.on_notice = on_notice
        self.writer = BulkWriter(engine_for(client), unavailable_timeout_s=options.unavailable_timeout_s)
        self.summary = IngestSummary()

    def meta(self, text: str, encoded_at: str) -> dict:
        return {"model": self.options.model_name, "model_revision": self.options.model_revision,
                "prune": str(self.options.prune), "text_hash": text_hash(text), "encoded_at": encoded_at}

    def run(self, records: Iterable[Record]) -> IngestSummary:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="milco-bulk") as writer:
            pending: Future | None = None
            for batch in self._batches(records):
                last = batch[-1][0]
                batch = self._without_unchanged(batch) if self.options.skip_existing else batch
                actions = self._encode(batch) if batch else []
                if pending is not None:
                    pending.result()
                pending = writer.submit(self._bulk, actions, last)
            if pending is not None:
                pending.result()
        self.summary.elapsed_s = time.perf_counter() - started
        return self.summary

    def _batches(self, records: Iterable[Record]) -> Iterator[list[tuple[Record, str, str]]]:
        batch: list[tuple[Record, str, str]] = []
        for record in records:
            self.summary.read += 1
            accepted = self._accept(record)
            if accepted is None:
                self.on_progress(1)
                continue
            batch.append(accepted)
            if len(batch) >= self.options.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _accept(self, record: Record) -> tuple[Record, str, str] | None:
        options = self.options
        if record.error is not None or record.source is None:
            self.summary.failed += 1
            self.dead_letters.add(line=record.line, doc_id=None, field_name=None,
                                  reason=record.error or "no record", record=record.raw)
            return None
        doc_id = record.doc_id or document_id(record.source, options.id_field)
        text = document_text(record.source, options.text_field)
        if text is None:
            kind = type(record.source[options.text_field]).__name__
            self.summary.failed += 1
            self.dead_letters.add(line=record.line, doc_id=doc_id, field_name=options.text_field,
                                  reason=f"document {doc_id} (line {record.line}): field '{options.text_field}' "
                                         f"is a {kind}, not a string or a list of strings",
                                  record=record.source)
            return None
        first_line = self.summary.seen_ids.get(doc_id)
        if first_line is not None:
            self.summary.duplicate_ids += 1
            self.on_notice(f"document {doc_id} (line {record.line}): duplicate id, also at line {first_line}; "
                           "the last one wins")
        self.summary.seen_ids[doc_id] = record.line
        return record, doc_id, text

    def _without_unchanged(self, batch: list[tuple[Record, str, str]]) -> list[tuple[Record, str, str]]:
        """The batch minus documents whose stored milco_meta already matches model, pruning and text."""
        if self.options.in_place:
            stored = {doc_id: (record.source.get(META_FIELD) or {}) for record, doc_id, _ in batch}
        else:
            found = plain(self.client.mget(index=self.options.index, body={"ids": [doc_id for _, doc_id, _ in batch]},
                                           _source_includes=[META_FIELD]))["docs"]
            stored = {doc["_id"]: (doc.get("_source") or {}).get(META_FIELD) or {} for doc in found if doc.get("found")}
        kept = []
        for item in batch:
            record, doc_id, text = item
            meta = stored.get(doc_id) or {}
            wanted = self.meta(text, "")
            if all(meta.get(key) == wanted[key] for key in ("model", "model_revision", "prune", "text_hash")):
                self.summary.skipped += 1
                self.on_progress(1)
            else:
                kept.append(item)
        return kept

    def _encode(self, batch: list[tuple[Record, str, str]]) -> list[dict]:
        started = time.perf_counter()
        texts = [text for _, _, text in batch]
        if self.options.passages:
            milco_fields = self._encode_passages(texts)
        else:
            vectors = self.encoder.encode(texts, max_length=self.options.max_length, prune=self.options.prune)
            milco_fields = [self._fields(vector) for vector in vectors]
        self.summary.encode_s += time.perf_counter() - started
        encoded_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        actions = []
        for (record, doc_id, text), fields in zip(batch, milco_fields):
            if isinstance(fields, InvalidVectorError):
                self.summary.failed += 1
                self.on_progress(1)
                self.dead_letters.add(line=record.line, doc_id=doc_id, field_name=fields.field,
                                      reason=f"document {doc_id} (line {record.line}): the encoder's vector is "
                                             f"not storable: {fields}", record=record.source)
                continue
            if not text.strip():
                self.summary.no_text += 1
                fields = {}
            # "_id" is metadata: it names the document and cannot also be a field of it.
            source = {key: value for key, value in record.source.items() if key not in MILCO_FIELDS + ("_id",)}
            source.update(fields)
            source[META_FIELD] = self.meta(text, encoded_at)
            action = {"_index": self.options.index, "_id": doc_id, "_source": source, "_milco_line": record.line}
            if self.options.in_place:
                # The document as read, with its MILCO fields replaced whole, written only if unchanged since.
                action.update(if_seq_no=record.seq_no, if_primary_term=record.primary_term)
            actions.append(action)
        return actions

    def _fields(self, vector) -> dict | InvalidVectorError:
        """The document's MILCO fields, or why the vector cannot be stored."""
        try:
            check_vector(vector, self.encoder.vocabulary)
        except InvalidVectorError as exc:
            return exc
        return vector_fields(vector, self.encoder.vocabulary)

    def _encode_passages(self, texts: list[str]) -> list[dict | InvalidVectorError]:
        """Per text, a ``milco_passages`` list with one vector per token window."""
        split = [split_passages(self.encoder.tokenizer, text, max_tokens=self.options.passage_tokens,
                                overlap=self.options.passage_overlap) if text.strip() else [] for text in texts]
        flat = [passage for passages in split for passage in passages]
        vectors = iter(self.encoder.encode([p.text for p in flat], max_length=self.options.passage_tokens,
                                           prune=self.options.prune))
        documents: list[dict | InvalidVectorError] = []
        for passages in split:
            fields = [(p, self._fields(next(vectors))) for p in passages]
            invalid = next((f for _, f in fields if isinstance(f, InvalidVectorError)), None)
            documents.append(invalid or {PASSAGES_PATH: [{"text": p.text, "start_token": p.start_token, **f}
                                                         for p, f in fields]})
        return documents

    def _bulk(self, actions: list[dict], last: Record) -> None:
        started = time.perf_counter()
        if actions:
            self._write(actions)
        self.summary.bulk_s += time.perf_counter() - started
        self.on_batch_done(last)

    def _write(self, actions: list[dict]) -> None:
        lines = {action["_id"]: action.pop("_milco_line") for action in actions}
        originals = {action["_id"]: action["_source"] for action in actions}
        try:
            results = self.writer.write(actions)
        finally:
            self.summary.rejected_429 = self.writer.counters.rejected_429
            self.summary.unavailable_retries = self.writer.counters.unavailable_retries
        for result in results:
            if result.ok:
                self.summary.written += 1
            elif result.status == 409:
                # Changed since it was read: its stale vector is not written; a re-run picks it up.
                self.summary.conflicts += 1
            else:
                self._refused(result, lines.get(result.doc_id), originals.get(result.doc_id))
            self.on_progress(1)

    def _refused(self, result: BulkResult, line: int | None, original: object) -> None:
        self.summary.failed += 1
        error = result.error
        reason = error.get("reason", error) if isinstance(error, dict) else error
        caused_by = error.get("caused_by", {}).get("reason") if isinstance(error, dict) else None
        named = REFUSED_FIELD.search(str(reason))
        field_name = named.group(1) if named else None
        where = f"document {result.doc_id}" + (f" (line {line})" if line is not None else "")
        detail = f"{reason}" + (f": {caused_by}" if caused_by else "")
        self.dead_letters.add(line=line, doc_id=result.doc_id, field_name=field_name,
                              reason=f"{where}: the cluster refused it (status {result.status}"
                                     + (f", field '{field_name}'" if field_name else "") + f"): {detail}",
                              record=original)
