"""The encode stage: source documents -> MILCO bulk actions for one index, and outcomes for the rest.

Per document: text missing, empty or blank: written without MILCO terms (``no_text``); a
list of strings: joined with newlines; text of any other type, or unreadable input:
refused; with ``passages``: one vector per token window in the nested ``milco_passages``
field; a vector with a weight that is not a positive finite number (a faulty custom
encoder): refused naming the view's field; with ``skip_existing``, a document whose
stored ``milco_meta`` matches model, pruning and text is skipped (a document written before documents carried
the model's fingerprint matches by the model's name). The index's vector field
lays out the terms (its key scheme) and says which vectors it clips (counted, still written).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.passages import split_passages
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector
from milco_os.errors import UNAVAILABLE_TIMEOUT_S, MilcoOsError
from milco_os.index.fields import META_FIELD, PASSAGES_PATH, InvalidVectorError, check_vector
from milco_os.index.vector_fields import EVERY_VECTOR_FIELD, VectorField
from milco_os.pipeline.documents import Outcome, SourceDocument, SourceItem, UnreadableInput, refused

# Every field any vector-field strategy writes: replaced whole, whichever strategy wrote the source.
MILCO_FIELDS = (*EVERY_VECTOR_FIELD, PASSAGES_PATH)
MATCHING_META = ("model", "model_revision", "prune", "text_hash")
# Looks up the stored milco_meta of documents by (id, routing); absent documents are left out (keyed by id).
StoredMeta = Callable[[list[tuple[str, str | None]]], dict[str, dict]]


class EncoderFailure(Exception):
    """The encoder raised on one document's text (the others of its batch encode)."""


@dataclass(frozen=True)
class IngestOptions:
    """How documents are encoded (text field, pruning, passages, skipping) and batched and written (up to
    ``bulk_concurrency`` bulk requests in flight)."""

    text_field: str = "text"
    batch_size: int = 64
    prune: PruneSpec | str = PruneSpec()
    max_length: int | None = None
    model_name: str = "milco"
    passages: bool = False
    passage_tokens: int = 512
    passage_overlap: int = 0
    skip_existing: bool = False
    # Write into an index that records another model (their vectors known to be compatible).
    allow_other_model: bool = False
    # Move an index to this encoder's model in place: every document of another fingerprint (or of none) is encoded
    # again, the others skipped, and the index records the new model once all are written.
    re_encode: bool = False
    unavailable_timeout_s: float = UNAVAILABLE_TIMEOUT_S
    bulk_concurrency: int = 2
    # The most bytes of one _bulk request's body (action and source lines as the client sends them): a batch over it
    # is written as several requests, one after another, and a document larger than it on its own goes alone (never
    # refused for its size here). 10 MiB rather than opensearch-py's 100 MiB, which is all of a default node's
    # http.max_content_length: managed clusters on small instances accept 10 MiB (Amazon OpenSearch Service), and
    # bulk_concurrency requests are held on the coordinating node at once. 64 documents of a few KB with their
    # terms (about 1 MiB) stay one request; batches of passages or long texts are split.
    bulk_max_bytes: int = 10 * 2**20

    def __post_init__(self) -> None:
        object.__setattr__(self, "prune", PruneSpec.parse(self.prune))  # one spelling in milco_meta
        if self.re_encode:
            object.__setattr__(self, "skip_existing", True)
        if self.bulk_concurrency < 1:
            raise ValueError(f"bulk_concurrency must be at least 1, not {self.bulk_concurrency}")
        if self.bulk_max_bytes < 1:
            raise ValueError(f"bulk_max_bytes must be at least 1, not {self.bulk_max_bytes}")


@dataclass
class PreparedBatch:
    """A batch after the encode stage: bulk actions for the documents to write, outcomes for the rest."""

    last_position: object
    actions: list[dict]
    written: list[tuple[SourceDocument, bool]]  # per action: its document, and whether it had no text
    settled: list[Outcome]
    encode_s: float
    clipped: int = 0  # documents written with a weight the index clips


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


def unchanged(stored: dict, wanted: dict, *, strict: bool = False) -> bool:
    """Whether a document's stored ``milco_meta`` matches the one it would be written with; unless ``strict``, a
    fingerprint unknown on either side (a document written before documents carried one, an encoder that does not
    know its own) matches by the model's name."""
    def same(key: str) -> bool:
        if key == "model_revision" and not strict and not (stored.get(key) and wanted[key]):
            return True
        return stored.get(key) == wanted[key]

    return all(same(key) for key in MATCHING_META)


class EncodeStage:
    """Documents -> MILCO bulk actions for one index; settles what is refused or skipped before writing.

    ``stored_meta`` is how ``skip_existing`` finds what the index holds (documents read with a write
    guard carry their own).
    """

    def __init__(self, index_name: str, field: VectorField, encoder: SparseEncoder, options: IngestOptions,
                 stored_meta: StoredMeta) -> None:
        if options.passages and encoder.tokenizer is None:
            raise MilcoOsError("passages are split with the model's tokenizer, which this encoder does not have",
                               hint="encode in process (--model DIR) to use --passages.")
        self.index_name, self.encoder, self.options, self.stored_meta = index_name, encoder, options, stored_meta
        self.field = field
        self.clipped = 0

    def meta(self, text: str, encoded_at: str) -> dict:
        """A document's ``milco_meta``: the model (name and fingerprint), pruning and text it was encoded with."""
        return {"model": self.options.model_name, "model_revision": self.encoder.fingerprint or "",
                "prune": str(self.options.prune), "text_hash": text_hash(text), "encoded_at": encoded_at}

    def prepare(self, batch: list[SourceItem]) -> PreparedBatch:
        started = time.perf_counter()
        settled: list[Outcome] = []
        texts: list[tuple[SourceDocument, str]] = []
        for item in batch:
            if isinstance(item, UnreadableInput):
                settled.append(refused(item, item.reason))
                continue
            text = document_text(item.source, self.options.text_field)
            problem = self._text_problem(item, text)
            if problem:
                settled.append(refused(item, f"{item.where()}: field '{self.options.text_field}' {problem}",
                                       self.options.text_field))
            else:
                texts.append((item, text))
        if self.options.skip_existing and texts:
            texts = self._without_unchanged(texts, settled)
        self.clipped = 0
        actions, written = self._encode(texts, settled) if texts else ([], [])
        return PreparedBatch(batch[-1].position, actions, written, settled, time.perf_counter() - started,
                             self.clipped)

    def _text_problem(self, document: SourceDocument, text: str | None) -> str | None:
        """Why the document's text cannot be encoded, or None."""
        if text is None:
            kind = type(document.source[self.options.text_field]).__name__
            return f"is a {kind}, not a string or a list of strings"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"is not valid Unicode (code point U+{ord(text[exc.start]):04X} at character {exc.start})"
        return None

    def _without_unchanged(self, texts: list[tuple[SourceDocument, str]],
                           settled: list[Outcome]) -> list[tuple[SourceDocument, str]]:
        """The documents whose stored milco_meta does not already match model, pruning and text."""
        stored = {doc.doc_id: doc.source.get(META_FIELD) or {} for doc, _ in texts if doc.write_guard}
        lookup = [(doc.doc_id, doc.routing) for doc, _ in texts if not doc.write_guard]
        if lookup:
            stored.update(self.stored_meta(lookup))
        kept = []
        for doc, text in texts:
            if unchanged(stored.get(doc.doc_id) or {}, self.meta(text, ""), strict=self.options.re_encode):
                settled.append(Outcome("skipped", doc.line, doc.doc_id))
            else:
                kept.append((doc, text))
        return kept

    def _encode(self, texts: list[tuple[SourceDocument, str]],
                settled: list[Outcome]) -> tuple[list[dict], list[tuple[SourceDocument, bool]]]:
        try:
            encoded = self._encode_texts([t for _, t in texts])
        except (MilcoOsError, MemoryError):  # the encoder service, or the machine: the job stops
            raise
        except Exception as batch_error:  # a text the encoder cannot take: find it, encode the others
            encoded = [self._encode_one(text) for _, text in texts]
            if len(texts) > 1 and all(isinstance(result, EncoderFailure) for result in encoded):
                raise batch_error
        encoded_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        actions, written = [], []
        for (doc, text), fields in zip(texts, encoded):
            if isinstance(fields, EncoderFailure):
                settled.append(refused(doc, f"{doc.where()}: the encoder failed on its text: {fields}",
                                       self.options.text_field))
                continue
            if isinstance(fields, InvalidVectorError):
                settled.append(refused(doc, f"{doc.where()}: the encoder's vector is not storable: {fields}",
                                       fields.field))
                continue
            no_text = not text.strip()
            # "_id" is metadata: it names the document and cannot also be a field of it.
            source = {key: value for key, value in doc.source.items() if key not in MILCO_FIELDS + ("_id",)}
            source.update({} if no_text else fields)
            source[META_FIELD] = self.meta(text, encoded_at)
            action = {"_index": self.index_name, "_id": doc.doc_id, "_source": source}
            if doc.routing is not None:
                action["routing"] = doc.routing
            if doc.write_guard:
                # The document as read, with its MILCO fields replaced whole, written only if unchanged since.
                action.update(if_seq_no=doc.write_guard[0], if_primary_term=doc.write_guard[1])
            actions.append(action)
            written.append((doc, no_text))
        return actions, written

    def _encode_texts(self, texts: list[str]) -> list[dict | InvalidVectorError]:
        if self.options.passages:
            return self._passage_fields(texts)
        vectors = self.encoder.encode_documents(texts, max_length=self.options.max_length, prune=self.options.prune)
        return [self._fields(vector) for vector in vectors]

    def _encode_one(self, text: str) -> dict | InvalidVectorError | EncoderFailure:
        try:
            return self._encode_texts([text])[0]
        except (MilcoOsError, MemoryError):
            raise
        except Exception as exc:
            return EncoderFailure(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")

    def _fields(self, vector: SparseVector) -> dict | InvalidVectorError:
        """The document's MILCO fields, or why the vector cannot be stored."""
        try:
            check_vector(vector, self.encoder.vocabulary)
            fields = self.field.keys.document_fields(vector, self.encoder.vocabulary)
        except InvalidVectorError as exc:
            return exc
        self.clipped += self.field.clipped(vector)
        return fields

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
