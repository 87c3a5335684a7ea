"""The ingest pipeline against a scripted cluster: outcomes, dead letters, checkpoints, skipping, write guards."""

from __future__ import annotations

import io
import json
import threading
from typing import Sequence

import numpy as np
import pytest

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.engines import ClusterVersion, engine_for
from milco_os.errors import ClusterUnavailableError
from milco_os.index.handle import IndexHandle
from milco_os.index.vector_fields import RankFeatures
from milco_os.pipeline import bulk_writer
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import SourceDocument
from milco_os.pipeline.encode_stage import text_hash
from milco_os.pipeline.ingest import BatchReport, IngestOptions, Ingestor
from milco_os.pipeline.refusal_window import SystematicRefusalError
from milco_os.pipeline.sources import DictSource
from tests.unit.scripted_transport import DROP, Reply, Request, Script, bulk_items, error_reply, scripted_client

VOCABULARY = TermVocabulary(("[PAD]", "berlin", "capital"), ("<s>", "▁Berlin"))


class ToyEncoder(SparseEncoder):
    """Every non-blank text gets the same two terms; counts the texts it encodes."""

    name = "toy"
    vocabulary = VOCABULARY

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], *, max_length=None, prune=None, echo=True) -> list[SparseVector]:
        self.encoded += list(texts)
        return [SparseVector(np.array([1, 2], np.int32), np.array([1.5, 0.5], np.float32),
                             np.array([1], np.int32), np.array([0.25], np.float32)) if text.strip()
                else SparseVector.empty() for text in texts]


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_writer, "INITIAL_BACKOFF_S", 0.001)
    monkeypatch.setattr(bulk_writer, "UNAVAILABLE_PAUSE_S", 0.001)


def books(script: Script) -> IndexHandle:
    return IndexHandle(engine_for(scripted_client(script)), "books", RankFeatures(ClusterVersion("opensearch", "2.19.6")))


def bulk_ids_of(request: Request) -> list[str]:
    return [meta["_id"] for _, meta, _ in request.bulk_operations()]


def bulk_ids(script: Script) -> list[list[str]]:
    return [bulk_ids_of(request) for request in script.sent("POST", "/_bulk")]


def entries(stream: io.StringIO) -> list[tuple]:
    return [(e["line"], e["id"], e["field"]) for e in map(json.loads, stream.getvalue().splitlines())]


def test_each_document_has_one_outcome_and_refusals_reach_the_dead_letter_file() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"d": [400], "e": [409]}))
    stream, reports = io.StringIO(), []
    documents = [{"id": "a", "text": "Berlin"}, {"id": "b", "text": "   "}, {"id": "c", "text": 7},
                 {"id": "d", "text": "Paris", "year": "x"}, {"id": "e", "text": "Rome"}, ["not", "a", "dict"]]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=10), DeadLetters(stream),
                       on_batch_done=reports.append).run(DictSource(documents))

    assert bulk_ids(script) == [["a", "b", "d", "e"]]
    assert (summary.read, summary.written, summary.no_text, summary.failed, summary.conflicts) == (6, 2, 1, 3, 1)
    assert sorted(entries(stream), key=str) == sorted([(3, "c", "text"), (4, "d", "year"), (6, None, None)], key=str)
    assert [report.last_position for report in reports] == [6]
    _, source_b = script.sent("POST", "/_bulk")[0].bulk_operations()[1][1:]
    assert "milco_en" not in source_b and source_b["milco_meta"]["text_hash"] == text_hash("   ")


def test_a_checkpoint_covers_only_batches_the_cluster_took() -> None:
    calls = {"n": 0}

    def first_two_then_down(request: Request) -> Reply:
        calls["n"] += 1
        return bulk_items({})(request) if calls["n"] <= 2 else DROP

    script = Script().respond("POST", "/_bulk", first_two_then_down)
    stream, reports = io.StringIO(), []
    documents = [{"id": str(n), "text": "Berlin" if n != 5 else 5} for n in range(1, 7)]
    ingestor = Ingestor(books(script), ToyEncoder(),
                        IngestOptions(batch_size=2, unavailable_timeout_s=0.05, bulk_concurrency=1),
                        DeadLetters(stream), on_batch_done=reports.append)

    with pytest.raises(ClusterUnavailableError, match="has not taken writes"):
        ingestor.run(DictSource(documents))

    assert [report.last_position for report in reports] == [2, 4]
    assert all(isinstance(report, BatchReport) and report.written == 2 for report in reports)
    # Document 5's refusal belongs to the batch that was never written: a resumed run reports it, once.
    assert stream.getvalue() == ""
    assert (ingestor.summary.written, ingestor.summary.failed) == (4, 0)
    assert ingestor.summary.unavailable_retries >= 1


def test_skip_existing_skips_documents_whose_stored_meta_matches() -> None:
    options = IngestOptions(skip_existing=True, model_name="toy", prune="topk:8")
    unchanged = {"model": "toy", "model_revision": "", "prune": "topk:8", "text_hash": text_hash("Berlin")}
    stale = {**unchanged, "text_hash": text_hash("an older text")}
    script = Script().respond("POST", "/_bulk", bulk_items({}))
    script.expect("POST", "/books/_mget", Reply(200, {"docs": [
        {"_id": "a", "found": True, "_source": {"milco_meta": unchanged}},
        {"_id": "b", "found": True, "_source": {"milco_meta": stale}}, {"_id": "c", "found": False}]}))
    encoder = ToyEncoder()
    summary = Ingestor(books(script), encoder, options, DeadLetters(None)).run(
        DictSource([{"id": doc_id, "text": "Berlin"} for doc_id in "abc"]))

    assert script.sent("POST", "/books/_mget")[0].body == {"docs": [{"_id": "a"}, {"_id": "b"}, {"_id": "c"}]}
    assert bulk_ids(script) == [["b", "c"]] and len(encoder.encoded) == 2
    assert (summary.skipped, summary.written) == (1, 2)


def test_documents_read_with_a_write_guard_are_written_only_if_unchanged() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"y": [409]}))
    guarded = [SourceDocument(["x"], "x", {"text": "Berlin", "milco_meta": {"model": "old"}}, write_guard=(4, 1)),
               SourceDocument(["y"], "y", {"text": "Rome"}, write_guard=(9, 2))]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(skip_existing=True), DeadLetters(None)).run(guarded)

    headers = [meta for _, meta, _ in script.sent("POST", "/_bulk")[0].bulk_operations()]
    assert [(h["_id"], h["if_seq_no"], h["if_primary_term"]) for h in headers] == [("x", 4, 1), ("y", 9, 2)]
    assert script.sent("POST", "/books/_mget") == []  # their stored meta came with them
    assert (summary.written, summary.conflicts, summary.failed) == (1, 1, 0)


def test_duplicate_ids_are_reported_and_counted() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({}))
    notices: list[str] = []
    source = DictSource([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}],
                        on_notice=notices.append)
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(), DeadLetters(None)).run(source)

    assert notices == ["document a (line 3): duplicate id, also at line 1; the last one wins"]
    assert summary.duplicate_ids == 1 and summary.written == 3


def test_routing_is_written_and_looked_up_with_each_document() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({}))
    script.expect("POST", "/books/_mget", Reply(200, {"docs": [{"_id": "a", "found": False},
                                                               {"_id": "b", "found": False}]}))
    source = DictSource([{"id": "a", "text": "x", "tenant": "t1"}, {"id": "b", "text": "y"}], routing_field="tenant")
    Ingestor(books(script), ToyEncoder(), IngestOptions(skip_existing=True), DeadLetters(None)).run(source)

    assert script.sent("POST", "/books/_mget")[0].body == {"docs": [{"_id": "a", "routing": "t1"}, {"_id": "b"}]}
    headers = [meta for _, meta, _ in script.sent("POST", "/_bulk")[0].bulk_operations()]
    assert [(h["_id"], h.get("routing")) for h in headers] == [("a", "t1"), ("b", None)]


def test_a_request_refused_as_a_whole_is_split_until_the_poisoned_document_stands_alone() -> None:
    poison = "p" * 600

    def refuse_long_ids(request: Request) -> Reply:
        if any(len(meta["_id"]) > 512 for _, meta, _ in request.bulk_operations()):
            return error_reply(400, "action_request_validation_exception",
                               "Validation Failed: 1: id [ppp...] is too long, must be no longer than 512 bytes")
        return bulk_items({})(request)

    script = Script().respond("POST", "/_bulk", refuse_long_ids)
    stream = io.StringIO()
    ids = [f"d{n}" for n in range(7)] + [poison] + [f"e{n}" for n in range(10)]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=64), DeadLetters(stream)).run(
        DictSource([{"id": doc_id, "text": "Berlin"} for doc_id in ids]))

    assert (summary.written, summary.failed) == (17, 1)
    (entry,) = map(json.loads, stream.getvalue().splitlines())
    assert entry["id"] == poison and "status 400" in entry["reason"] and "too long" in entry["reason"]
    assert len(script.sent("POST", "/_bulk")) <= 2 * 5 + 1  # a bisection, not one request per document


class FussyEncoder(ToyEncoder):
    """Raises on any batch holding a text with the word 'boom', like a tokenizer refusing one input."""

    def encode(self, texts: Sequence[str], **options) -> list[SparseVector]:
        if any("boom" in text for text in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        return super().encode(texts, **options)


def test_a_text_the_encoder_cannot_take_is_refused_alone() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({}))
    stream = io.StringIO()
    documents = [{"id": "a", "text": "Berlin"}, {"id": "b", "text": "boom"}, {"id": "c", "text": "Paris"},
                 {"id": "d", "text": "lone \ud800 surrogate"}]
    summary = Ingestor(books(script), FussyEncoder(), IngestOptions(), DeadLetters(stream)).run(DictSource(documents))

    assert bulk_ids(script) == [["a", "c"]] and (summary.written, summary.failed) == (2, 2)
    reasons = {e["id"]: e["reason"] for e in map(json.loads, stream.getvalue().splitlines())}
    assert "the encoder failed on its text: TypeError: TextEncodeInput" in reasons["b"]
    assert "field 'text' is not valid Unicode (code point U+D800 at character 5)" in reasons["d"]


def test_an_encoder_that_fails_on_everything_stops_the_job() -> None:
    script = Script()
    with pytest.raises(TypeError, match="TextEncodeInput"):
        Ingestor(books(script), FussyEncoder(), IngestOptions(), DeadLetters(None)).run(
            DictSource([{"id": "a", "text": "boom"}, {"id": "b", "text": "boom again"}]))
    assert script.requests == []


def test_documents_failed_by_a_neighbours_parse_error_are_sent_again_apart() -> None:
    def cascade_after_nan(request: Request) -> Reply:
        """Like the cluster: an unparsable source fails its own item and every item after it."""
        items, broken = [], False
        for operation, meta, source in request.bulk_operations():
            broken = broken or any(isinstance(v, float) and v != v for v in source.values())
            item = {"_id": meta["_id"], "status": 400 if broken else 201}
            if broken:
                item["error"] = {"type": "mapper_parsing_exception", "reason": "Non-standard token 'NaN'"}
            items.append({operation: item})
        return Reply(200, {"errors": broken, "items": items})

    script = Script().respond("POST", "/_bulk", cascade_after_nan)
    stream = io.StringIO()
    documents = [{"id": "a", "text": "x"}, {"id": "nan", "text": "y", "score": float("nan")},
                 {"id": "b", "text": "z"}, {"id": "c", "text": "w"}]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(), DeadLetters(stream)).run(DictSource(documents))

    assert (summary.written, summary.failed) == (3, 1)
    assert [entry["id"] for entry in map(json.loads, stream.getvalue().splitlines())] == ["nan"]
    assert bulk_ids(script) == [["a", "nan", "b", "c"], ["nan"], ["b", "c"]]


def test_two_bulk_requests_are_in_flight_at_once() -> None:
    second_started, overlapped = threading.Event(), []

    def first_waits_for_the_second(request: Request) -> Reply:
        ids = [meta["_id"] for _, meta, _ in request.bulk_operations()]
        if ids == ["1", "2"]:
            overlapped.append(second_started.wait(timeout=30))
        else:
            second_started.set()
        return bulk_items({})(request)

    script = Script().respond("POST", "/_bulk", first_waits_for_the_second)
    reports: list[BatchReport] = []
    documents = [{"id": str(n), "text": "Berlin"} for n in range(1, 7)]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=2), DeadLetters(None),
                       on_batch_done=reports.append).run(DictSource(documents))
    assert overlapped == [True] and summary.written == 6
    assert [report.last_position for report in reports] == [2, 4, 6]  # recorded in order all the same


def test_a_batch_holding_an_id_still_being_written_waits_so_the_last_version_wins() -> None:
    events: list[str] = []
    another_started = threading.Event()

    def slow_first(request: Request) -> Reply:
        ids = [meta["_id"] for _, meta, _ in request.bulk_operations()]
        events.append(f"start {ids}")
        if ids == ["a", "b"]:
            another_started.wait(timeout=0.5)  # a second request arriving now would be the bug
        else:
            another_started.set()
        events.append(f"end {ids}")
        return bulk_items({})(request)

    script = Script().respond("POST", "/_bulk", slow_first)
    documents = [{"id": "a", "text": "old"}, {"id": "b", "text": "x"}, {"id": "a", "text": "new"}, {"id": "c", "text": "y"}]
    Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=2), DeadLetters(None)).run(DictSource(documents))
    assert events == ["start ['a', 'b']", "end ['a', 'b']", "start ['a', 'c']", "end ['a', 'c']"]


@pytest.mark.parametrize("bulk_pipeline", ["_none", None])
def test_own_writes_skip_the_stamp_pipeline_only_where_the_handle_says(bulk_pipeline: str | None) -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({}))
    handle = IndexHandle(engine_for(scripted_client(script)), "books",
                         RankFeatures(ClusterVersion("opensearch", "2.19.6")), bulk_pipeline=bulk_pipeline)
    Ingestor(handle, ToyEncoder(), IngestOptions(), DeadLetters(None)).run(DictSource([{"id": "a", "text": "x"}]))
    assert script.sent("POST", "/_bulk")[0].params.get("pipeline") == bulk_pipeline


def test_a_batch_over_bulk_max_bytes_is_written_in_several_requests_and_recorded_once() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"3": [400]}))
    stream, reports = io.StringIO(), []
    # About 1,300 bytes an action (document 6: 5,300), so two to a request of at most 3,000.
    documents = [{"id": str(n), "text": "x" * (5000 if n == 6 else 1000)} for n in range(1, 9)]
    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=4, bulk_max_bytes=3000, bulk_concurrency=1),
                       DeadLetters(stream), on_batch_done=reports.append).run(DictSource(documents))

    assert bulk_ids(script) == [["1", "2"], ["3", "4"], ["5"], ["6"], ["7", "8"]]
    assert [(r.last_position, r.read, r.written, r.failed) for r in reports] == [(4, 4, 3, 1), (8, 4, 4, 0)]
    assert (summary.read, summary.written, summary.failed) == (8, 7, 1)
    assert entries(stream) == [(3, "3", "year")]


def test_a_batch_is_checkpointed_only_once_all_of_its_requests_are_taken() -> None:
    script = Script().respond("POST", "/_bulk", lambda request: DROP if "7" in bulk_ids_of(request) else
                              bulk_items({})(request))
    reports: list[BatchReport] = []
    documents = [{"id": str(n), "text": "x" * 1000} for n in range(1, 9)]
    ingestor = Ingestor(books(script), ToyEncoder(),
                        IngestOptions(batch_size=4, bulk_max_bytes=3000, bulk_concurrency=1,
                                      unavailable_timeout_s=0.05), DeadLetters(None), on_batch_done=reports.append)

    with pytest.raises(ClusterUnavailableError, match="has not taken writes"):
        ingestor.run(DictSource(documents))

    assert bulk_ids(script)[:4] == [["1", "2"], ["3", "4"], ["5", "6"], ["7", "8"]]  # 5 and 6 were taken
    assert [report.last_position for report in reports] == [4]
    assert ingestor.summary.written == 4


def test_bulk_max_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bulk_max_bytes must be at least 1, not 0"):
        IngestOptions(bulk_max_bytes=0)


def test_one_cause_refusing_most_of_a_window_stops_the_job_before_its_documents_are_dead_lettered() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({str(n): [400] * 50 for n in range(1, 301) if n % 20}))
    stream, reports = io.StringIO(), []
    documents = [{"id": str(n), "text": "Berlin"} for n in range(1, 301)]
    ingestor = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=10, bulk_concurrency=1),
                        DeadLetters(stream), on_batch_done=reports.append)

    with pytest.raises(SystematicRefusalError, match=r"refused 95 of the last 100 documents for the same cause "
                                                     r"\(status 400, mapper_parsing_exception, field 'year'\)"):
        ingestor.run(DictSource(documents))

    # The tenth batch fills the window: it is neither dead-lettered nor checkpointed, nor anything after it.
    assert [report.last_position for report in reports] == list(range(10, 100, 10))
    assert len(entries(stream)) == 9 * 10 - 4 and ingestor.summary.written == 4


def test_refusals_for_several_causes_or_under_the_share_are_dead_lettered_as_usual() -> None:
    causes = {str(n): [400] * 50 if n % 2 else [409] for n in range(1, 301)}  # half mapping errors, half conflicts
    script = Script().respond("POST", "/_bulk", bulk_items(causes))
    stream = io.StringIO()
    documents = [{"id": str(n), "text": "Berlin"} for n in range(1, 301)]

    summary = Ingestor(books(script), ToyEncoder(), IngestOptions(batch_size=10), DeadLetters(stream)).run(
        DictSource(documents))

    assert (summary.failed, summary.conflicts, summary.written) == (150, 150, 0)
    assert len(entries(stream)) == 150
