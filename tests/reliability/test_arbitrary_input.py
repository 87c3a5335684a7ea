"""Property: whatever bytes a JSONL file holds, ingest ends normally and accounts for every line (real node).

Lines are arbitrary bytes, JSON of any shape and depth, texts with any code point (lone
surrogates included), ids of any type and length, and values the index mapping refuses
(a field that changes type, metadata field names, ``NaN``). Each non-blank line must end
up stored under its id, in the dead-letter file with a reason, or superseded by a later
line with the same id.
"""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opensearchpy import OpenSearch, helpers

from milco_os.index.setup import ensure_index
from milco_os.model import MilcoEncoder
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import document_id
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.sources import JsonlSource
from tests.reliability.harness import Row

pytestmark = pytest.mark.integration

ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)  # lone surrogates too
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), ANY_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(ANY_TEXT, inner, max_size=3)),
                           max_leaves=8)
IDS = st.one_of(st.none(), st.just(""), st.integers(0, 3), st.sampled_from(["a", "b", "c"]),
                st.text(max_size=3), st.text(min_size=520, max_size=600, alphabet="xyz"), ANY_TEXT)
TEXTS = st.one_of(ANY_TEXT, st.lists(ANY_TEXT, max_size=3), SCALARS, JSON_VALUES)
FIELDS = st.dictionaries(st.sampled_from(["n", "tags", "_routing", "", "a.b", "milco_en", "_id"]), JSON_VALUES,
                         max_size=3)
DOCUMENTS = st.builds(lambda doc_id, text, fields: {**fields, "id": doc_id, "text": text}, IDS, TEXTS, FIELDS)
LINES = st.one_of(
    DOCUMENTS.map(lambda doc: json.dumps(doc).encode("utf-8")),
    st.binary(max_size=40).map(lambda raw: raw.replace(b"\n", b" ")),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),
    JSON_VALUES.map(lambda value: json.dumps(value).encode("utf-8")),
)


def expected_id(line: bytes) -> str:
    """The id a stored line is found under (computed as the product promises: the id field, else a hash)."""
    return document_id(json.loads(line.decode("utf-8").removeprefix("\ufeff")), "id")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("arbitrary")


@pytest.fixture
def totals(record) -> Iterator[dict[str, int]]:
    """What the property test's examples sent and where it went, kept across its examples (hypothesis runs
    them all under one set of function fixtures) and recorded as one row of the reliability matrix after them."""
    counts = {"sent": 0, "stored": 0, "dead": 0, "superseded": 0, "examples": 0}
    yield counts
    assert counts["examples"] > 0, "no example of the property ran to its end"
    record(Row("bad input", f"arbitrary bytes, JSON of any shape and depth, any code points, ids of any type and "
                            f"length, refused values ({counts['examples']} generated files)", "Python API",
               counts["sent"], counts["stored"], counts["dead"], 0, 0, "-",
               "each line stored, dead-lettered with a reason, or superseded by a later line with its id",
               superseded=counts["superseded"]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.data_too_large])
@given(lines=st.lists(LINES, min_size=1, max_size=10))
def test_every_line_is_stored_dead_lettered_or_superseded(lines: list[bytes], opensearch: OpenSearch,
                                                           tiny_encoder: MilcoEncoder, folder: Path,
                                                           totals: dict[str, int]) -> None:
    path = folder / "input.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    index, _ = ensure_index(opensearch, f"arbitrary-{uuid.uuid4().hex[:10]}", replicas=0)
    stream = io.StringIO()
    try:
        summary = Ingestor(index, tiny_encoder, IngestOptions(batch_size=4), DeadLetters(stream)).run(
            JsonlSource(path))
        opensearch.indices.refresh(index=index.name)
        stored = {hit["_id"] for hit in helpers.scan(opensearch, index=index.name, query={"_source": False})}
    finally:
        opensearch.indices.delete(index=index.name)

    sent = [number for number, line in enumerate(lines, start=1) if line.strip()]
    dead = {entry["line"]: entry for entry in map(json.loads, stream.getvalue().splitlines())}
    assert all(entry["reason"] for entry in dead.values())
    assert set(dead) <= set(sent) and len(dead) == summary.failed
    kept = [number for number in sent if number not in dead]
    kept_ids = [expected_id(lines[number - 1]) for number in kept]
    assert stored == set(kept_ids)
    assert (summary.read, summary.written + summary.failed) == (len(sent), len(sent))
    totals.update(sent=totals["sent"] + len(sent), stored=totals["stored"] + len(stored),
                  dead=totals["dead"] + len(dead), superseded=totals["superseded"] + len(kept_ids) - len(stored),
                  examples=totals["examples"] + 1)
