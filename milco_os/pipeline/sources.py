"""Sources of documents for ingest: a JSONL file, or Python dicts (index slices: ``pipeline.reindex``).

Each yields ``SourceDocument``s (with an id: the ``id_field`` value, else a content hash; and
the ``routing_field`` value as routing when one is named)
and ``UnreadableInput`` for what cannot be a document. A repeated id is reported through
``on_notice`` and counted: the last one wins, since it is written last.
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from milco_os.pipeline.documents import SourceDocument, SourceItem, UnreadableInput, document_id

BYTE_ORDER_MARK = "\ufeff"


def identified(number: int, source: dict, id_field: str, routing_field: str | None, raw: str) -> SourceItem:
    """The document at ``number`` with its id and routing, or why it has no id (no content hash)."""
    routing = source.get(routing_field) if routing_field else None
    try:
        document = SourceDocument(number, document_id(source, id_field), source, line=number,
                                  routing=None if routing in (None, "") else str(routing))
    except (RecursionError, TypeError, ValueError) as exc:
        return UnreadableInput(number, number, raw, f"document {number} cannot be identified: "
                                                    f"{type(exc).__name__}: {exc}")
    for what, value in (("id", document.doc_id), ("routing", document.routing or "")):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # the cluster would store another id (U+FFFD) than the one asked for
            return UnreadableInput(number, number, raw, f"document {number}: its {what} is not valid Unicode")
    return document


class DuplicateIds:
    """Remembers each id's first line and reports ids seen again."""

    def __init__(self, on_notice: Callable[[str], None]) -> None:
        self.on_notice = on_notice
        self.first_line: dict[str, int] = {}
        self.count = 0

    def check(self, document: SourceDocument) -> None:
        first = self.first_line.setdefault(document.doc_id, document.line or 0)
        if first != (document.line or 0):
            self.count += 1
            self.on_notice(f"{document.where()}: duplicate id, also at line {first}; the last one wins")


class JsonlSource:
    """The documents of a JSONL file, after line ``start_after`` (a checkpoint's line) when resuming."""

    def __init__(self, path: Path, *, id_field: str = "id", routing_field: str | None = None, start_after: int = 0,
                 on_notice: Callable[[str], None] = lambda line: None) -> None:
        self.path, self.id_field, self.routing_field, self.start_after = path, id_field, routing_field, start_after
        self.duplicates = DuplicateIds(on_notice)

    def __iter__(self) -> Iterator[SourceItem]:
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number <= self.start_after or not raw.strip():
                    continue
                item = self._parse(number, raw)
                if isinstance(item, SourceDocument):
                    self.duplicates.check(item)
                yield item

    def _parse(self, number: int, raw: bytes) -> SourceItem:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return UnreadableInput(number, number, raw.decode("utf-8", "backslashreplace").rstrip("\n"),
                                   f"line {number} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
        if number == 1:
            text = text.removeprefix(BYTE_ORDER_MARK)
        try:
            source = json.loads(text)
        except json.JSONDecodeError as exc:
            return UnreadableInput(number, number, text.rstrip("\r\n"), f"line {number} is not valid JSON ({exc.msg})")
        except RecursionError:
            return UnreadableInput(number, number, text[:1000], f"line {number} is JSON nested too deeply to read")
        if not isinstance(source, dict):
            return UnreadableInput(number, number, text.rstrip("\r\n"),
                                   f"line {number} is a JSON {type(source).__name__}, not an object")
        return identified(number, source, self.id_field, self.routing_field, text)


class DictSource:
    """Documents given as Python dicts; positions and lines count from 1."""

    def __init__(self, documents: Iterable[object], *, id_field: str = "id", routing_field: str | None = None,
                 on_notice: Callable[[str], None] = lambda line: None) -> None:
        self.documents, self.id_field, self.routing_field = documents, id_field, routing_field
        self.duplicates = DuplicateIds(on_notice)

    def __iter__(self) -> Iterator[SourceItem]:
        for number, document in enumerate(self.documents, start=1):
            if not isinstance(document, dict):
                yield UnreadableInput(number, number, repr(document),
                                      f"document {number} is {type(document).__name__}, not a dict")
                continue
            item = identified(number, document, self.id_field, self.routing_field, repr(document)[:1000])
            if isinstance(item, SourceDocument):
                self.duplicates.check(item)
            yield item


def first_texts(path: Path, text_field: str, lines: int) -> list[str]:
    """The texts of the first ``lines`` lines of a JSONL file (lines that are not JSON objects with a string text
    are passed over): a sample of what the file holds."""
    texts = []
    with path.open(encoding="utf-8", errors="replace") as stream:
        for line in islice(stream, lines):
            try:
                value = json.loads(line).get(text_field)
            except (ValueError, AttributeError):
                continue
            if isinstance(value, str):
                texts.append(value)
    return texts
