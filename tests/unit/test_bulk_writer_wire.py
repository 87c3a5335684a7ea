"""BulkWriter against a scripted cluster: per-document 429s, conflicts, refusals and outages."""

from __future__ import annotations

import time

import pytest
from opensearchpy import OpenSearch

from milco_os.engines import engine_for
from milco_os.errors import ClusterUnavailableError, IndexUnavailableError
from milco_os.pipeline import bulk_writer
from milco_os.pipeline.bulk_writer import BulkResult, BulkWriter, request_bytes, request_slices
from tests.unit.scripted_transport import DROP, Script, ScriptedConnection, bulk_items, error_reply, scripted_client

DOC_IDS = ("a", "b", "c", "d")


@pytest.fixture(autouse=True)
def short_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoffs and outage pauses of a millisecond, so retries cost no test time."""
    monkeypatch.setattr(bulk_writer, "INITIAL_BACKOFF_S", 0.001)
    monkeypatch.setattr(bulk_writer, "UNAVAILABLE_PAUSE_S", 0.001)


def actions(*doc_ids: str) -> list[dict]:
    return [{"_index": "books", "_id": doc_id, "_source": {"title": f"title {doc_id}"}} for doc_id in doc_ids]


def writer(script: Script, unavailable_timeout_s: float = 5.0) -> BulkWriter:
    return BulkWriter(engine_for(scripted_client(script)), unavailable_timeout_s=unavailable_timeout_s)


def by_id(results: list[BulkResult]) -> dict[str, BulkResult]:
    return {result.doc_id: result for result in results}


def sent_ids(script: Script) -> list[list[str]]:
    """The document ids of each ``_bulk`` request, in order."""
    return [[meta["_id"] for _, meta, _ in request.bulk_operations()] for request in script.sent("POST", "/_bulk")]


def test_documents_rejected_with_429_are_sent_again_alone_and_counted() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [429, 429], "d": [429]}))
    bulk = writer(script)

    results = by_id(bulk.write(actions(*DOC_IDS)))

    assert sorted(results) == list(DOC_IDS) and all(result.ok for result in results.values())
    assert sent_ids(script)[0] == list(DOC_IDS)
    assert sorted(sent_ids(script)[1]) == ["b", "d"] and sent_ids(script)[2:] == [["b"]]
    assert bulk.counters.rejected_429 == 3
    assert bulk.counters.unavailable_retries == 0


def test_a_document_pushed_back_many_times_is_still_written_while_the_cluster_answers() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [429] * 12}))
    bulk = writer(script)

    results = by_id(bulk.write(actions("a", "b")))

    assert results["a"].ok and results["b"].ok
    assert sent_ids(script) == [["a", "b"]] + [["b"]] * 12
    assert bulk.counters.rejected_429 == 12


def test_backpressure_longer_than_the_timeout_stops_the_writer_and_refuses_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_writer, "MAX_BACKOFF_S", 0.02)
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [429] * 10_000}))
    bulk = writer(script, unavailable_timeout_s=0.2)

    started = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match=r"has not taken writes for 0\.2 s \(1 document\(s\) waiting\): "
                                                      r"es_rejected_execution_exception: \[b\]: rejected execution"):
        bulk.write(actions("a", "b"))

    assert 0.2 <= time.monotonic() - started < 2.0
    assert sent_ids(script)[0] == ["a", "b"] and set(map(tuple, sent_ids(script)[1:])) == {("b",)}


def test_conflict_and_mapping_error_are_reported_once_not_retried() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [409], "c": [400]}))
    bulk = writer(script)

    results = by_id(bulk.write(actions(*DOC_IDS)))

    assert len(script.sent("POST", "/_bulk")) == 1
    assert (results["b"].ok, results["b"].status) == (False, 409)
    assert (results["c"].ok, results["c"].status) == (False, 400)
    assert results["c"].error["type"] == "mapper_parsing_exception"
    assert "failed to parse field [year]" in results["c"].error["reason"]
    assert results["a"].ok and results["d"].ok
    assert bulk.counters.rejected_429 == 0


def test_connection_lost_on_the_first_request_is_ridden_out() -> None:
    script = Script().expect("POST", "/_bulk", DROP).respond("POST", "/_bulk", bulk_items({}))
    bulk = writer(script)

    results = by_id(bulk.write(actions(*DOC_IDS)))

    assert sorted(results) == list(DOC_IDS) and all(result.ok for result in results.values())
    assert sent_ids(script) == [list(DOC_IDS), list(DOC_IDS)]
    assert bulk.counters.unavailable_retries == 1


def test_node_answering_503_is_waited_for() -> None:
    unavailable = error_reply(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master]")
    script = Script().expect("POST", "/_bulk", unavailable, unavailable).respond("POST", "/_bulk", bulk_items({}))
    bulk = writer(script)

    results = bulk.write(actions(*DOC_IDS))

    assert sorted(result.doc_id for result in results if result.ok) == list(DOC_IDS)
    assert len(script.sent("POST", "/_bulk")) == 3
    assert bulk.counters.unavailable_retries == 2


def test_cluster_down_longer_than_the_timeout_stops_the_writer() -> None:
    script = Script().respond("POST", "/_bulk", lambda request: DROP)
    bulk = writer(script, unavailable_timeout_s=0.2)

    started = time.monotonic()
    with pytest.raises(ClusterUnavailableError, match=r"http://127\.0\.0\.1:9200 has not taken writes .*4 document"):
        bulk.write(actions(*DOC_IDS))

    assert 0.2 <= time.monotonic() - started < 2.0
    assert len(script.sent("POST", "/_bulk")) >= 2
    assert bulk.counters.unavailable_retries == len(script.sent("POST", "/_bulk")) - 1


def test_documents_answered_503_are_sent_again_until_taken() -> None:
    statuses = {"a": [503] * 3, "b": [503] * 6}
    script = Script().respond("POST", "/_bulk", bulk_items(statuses))
    bulk = writer(script, unavailable_timeout_s=0.5)

    results = by_id(bulk.write(actions("a", "b", "c")))

    assert all(result.ok for result in results.values())
    assert sent_ids(script)[:4] == [["a", "b", "c"], ["a", "b"], ["a", "b"], ["a", "b"]]
    assert sent_ids(script)[4:] == [["b"]] * 3
    assert bulk.counters.unavailable_retries == 6


class MeasuredConnection(ScriptedConnection):
    """Also records the size in bytes of each ``_bulk`` body as the client sends it."""

    def __init__(self, *, sizes: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes = sizes

    def perform_request(self, method, url, params=None, body=None, *args, **kwargs):
        if url.endswith("/_bulk"):
            self.sizes.append(len(body))
        return super().perform_request(method, url, params, body, *args, **kwargs)


def test_a_write_goes_in_requests_within_max_bytes_and_a_larger_document_goes_alone() -> None:
    script, sizes = Script().respond("POST", "/_bulk", bulk_items({"e": [429]})), []
    client = OpenSearch(hosts=[{"host": "127.0.0.1", "port": 9200}], connection_class=MeasuredConnection,
                        script=script, sizes=sizes, max_retries=0)
    bulk = BulkWriter(engine_for(client), max_bytes=2800)
    # Two bytes a character: about 870 bytes a document, three to a request (counting characters would put five).
    documents = [{"_index": "books", "_id": doc_id, "_source": {"text": "é" * (3000 if doc_id == "big" else 400)}}
                 for doc_id in ("a", "b", "c", "big", "d", "e", "f", "g")]

    results = bulk.write(documents)

    assert [result.doc_id for result in results] == ["a", "b", "c", "big", "d", "e", "f", "g"]
    assert all(result.ok for result in results)
    assert sent_ids(script) == [["a", "b", "c"], ["big"], ["d", "e", "f"], ["e"], ["g"]]  # "e" retried alone
    assert max(sizes[:1] + sizes[2:]) <= 2800 < sizes[1]
    groups = [documents[0:3], documents[3:4], documents[4:7], documents[5:6], documents[7:8]]
    assert sizes == [sum(map(request_bytes, group)) for group in groups]  # measured as the client serialises


@pytest.mark.parametrize(("sizes", "parts"), [
    ([], []),
    ([5, 5, 5], [(0, 2), (2, 3)]),  # a request of exactly max_bytes is within it
    ([20, 1, 1], [(0, 1), (1, 3)]),
    ([1, 20, 20, 1], [(0, 1), (1, 2), (2, 3), (3, 4)]),
])
def test_request_slices_fill_each_request_up_to_max_bytes(sizes: list[int], parts: list[tuple[int, int]]) -> None:
    assert [(part.start, part.stop) for part in request_slices(sizes, 10)] == parts


WRITE_BLOCK = (403, "cluster_block_exception", "index [books] blocked by: [FORBIDDEN/8/index write (api)];")
CLOSED = (400, "index_closed_exception", "closed")
STRICT_ON_META = (400, "strict_dynamic_mapping_exception",
                  "mapping set to strict, dynamic introduction of [milco_meta] within [_doc] is not allowed")
STRICT_ON_TITLE = (400, "strict_dynamic_mapping_exception",
                   "mapping set to strict, dynamic introduction of [subtitle] within [_doc] is not allowed")


@pytest.mark.parametrize("fault", [WRITE_BLOCK, CLOSED, STRICT_ON_META,
                                   (404, "index_not_found_exception", "no such index [books]"),
                                   (403, "security_exception", "no permissions for [indices:data/write/bulk[s]]"),
                                   (400, "illegal_argument_exception",
                                    "no write index is defined for alias [books]. The write index may be explicitly "
                                    "disabled using is_write_index=false")])
def test_an_index_refusing_writes_for_a_while_is_waited_out_and_nothing_is_refused(
        fault: tuple, caplog: pytest.LogCaptureFixture) -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({doc_id: [fault] * 3 for doc_id in DOC_IDS}))
    bulk = writer(script)

    results = bulk.write(actions(*DOC_IDS))

    assert all(result.ok for result in results) and len(results) == len(DOC_IDS)
    assert len(script.sent("POST", "/_bulk")) == 4
    assert bulk.counters.index_fault_retries == 3 * len(DOC_IDS) and bulk.counters.rejected_429 == 0
    waits = [record.getMessage() for record in caplog.records if "refuses writes" in record.getMessage()]
    assert len(waits) == 1 and fault[1] in waits[0]  # named once, not once per retry


def test_an_index_refusing_writes_past_the_timeout_stops_the_writer_with_its_cause(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulk_writer, "MAX_BACKOFF_S", 0.02)
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [WRITE_BLOCK] * 10_000}))
    bulk = writer(script, unavailable_timeout_s=0.2)

    with pytest.raises(IndexUnavailableError, match=r"refused writes for 0\.2 s \(1 document\(s\) waiting\): "
                                                    r"cluster_block_exception: index \[books\] blocked") as stopped:
        bulk.write(actions("a", "b"))

    assert stopped.value.exit_code == 11 and "--resume" in stopped.value.hint
    assert sent_ids(script)[0] == ["a", "b"] and set(map(tuple, sent_ids(script)[1:])) == {("b",)}


def test_a_whole_request_denied_403_is_waited_for_as_the_index_s_fault() -> None:
    denied = error_reply(403, "security_exception", "no permissions for [indices:data/write/bulk]")
    script = Script().expect("POST", "/_bulk", denied).respond("POST", "/_bulk", bulk_items({}))
    bulk = writer(script)

    results = bulk.write(actions(*DOC_IDS))

    assert all(result.ok for result in results) and len(script.sent("POST", "/_bulk")) == 2
    assert bulk.counters.index_fault_retries == len(DOC_IDS)


def test_a_strict_mapping_refusing_the_document_s_own_field_is_the_document_s_fault() -> None:
    script = Script().respond("POST", "/_bulk", bulk_items({"b": [STRICT_ON_TITLE]}))
    bulk = writer(script)

    results = by_id(bulk.write(actions(*DOC_IDS)))

    assert len(script.sent("POST", "/_bulk")) == 1 and bulk.counters.index_fault_retries == 0
    assert (results["b"].ok, results["b"].status) == (False, 400)
    assert results["b"].error["type"] == "strict_dynamic_mapping_exception"
