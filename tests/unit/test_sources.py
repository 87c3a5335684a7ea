"""Sources: what a JSONL file or Python dicts turn into, whatever their bytes."""

from __future__ import annotations

import json
from pathlib import Path

from milco_os.pipeline.documents import SourceDocument, UnreadableInput
from milco_os.pipeline.sources import DictSource, JsonlSource


def read(tmp_path: Path, data: bytes, **options) -> list:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(data)
    return list(JsonlSource(path, **options))


def test_a_byte_order_mark_and_crlf_line_ends_are_read_as_plain_lines(tmp_path: Path) -> None:
    items = read(tmp_path, b'\xef\xbb\xbf{"id": "a", "text": "x"}\r\n{"id": "b", "text": "y"}\r\n\r\n')
    assert [(item.doc_id, item.line) for item in items] == [("a", 1), ("b", 2)]


def test_unreadable_lines_name_their_line_and_why(tmp_path: Path) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    items = read(tmp_path, b'{"id": "a"}\n\xff\xfe\n{"id":\n[1, 2]\n' + deep + b"\n")
    assert isinstance(items[0], SourceDocument)
    reasons = [item.reason for item in items[1:] if isinstance(item, UnreadableInput)]
    assert reasons == ["line 2 is not valid UTF-8 (invalid start byte at byte 0)",
                       "line 3 is not valid JSON (Expecting value)", "line 4 is a JSON list, not an object",
                       "line 5 is JSON nested too deeply to read"]


def test_ids_of_any_type_routing_and_content_hashes(tmp_path: Path) -> None:
    items = read(tmp_path, b'{"id": 7, "t": 3}\n{"id": "", "text": "no id"}\n{"text": "\\ud800", "t": ""}\n',
                 routing_field="t")
    assert [item.doc_id for item in items][0] == "7" and items[0].routing == "3"
    assert len(items[1].doc_id) == 32 and items[1].routing is None
    assert len(items[2].doc_id) == 32 and items[2].routing is None  # a lone surrogate still hashes


def test_dict_sources_report_what_is_not_a_dict_and_duplicates() -> None:
    notices: list[str] = []
    source = DictSource([{"id": 1}, "text", {"id": 1}], on_notice=notices.append)
    items = list(source)
    assert isinstance(items[1], UnreadableInput) and items[1].reason == "document 2 is str, not a dict"
    assert source.duplicates.count == 1 and notices == [
        "document 1 (line 3): duplicate id, also at line 1; the last one wins"]
    assert json.loads(json.dumps([item.doc_id for item in items if isinstance(item, SourceDocument)])) == ["1", "1"]
