"""Reindex orchestration against a scripted cluster: the alias guard, and PIT reading with its scroll fallback."""

from __future__ import annotations

import pytest

from milco_os.engines import engine_for
from milco_os.errors import ClusterUnavailableError
from milco_os.pipeline.checkpoints import SliceState
from milco_os.errors import ReindexError
from milco_os.pipeline.alias_swap import move_alias
from milco_os.pipeline.slice_reader import SliceReader, supports_pit_reading
from tests.unit.scripted_transport import Reply, Script, error_reply, opensearch_info, scripted_client

NOT_FOUND = Reply(404)
ACKNOWLEDGED = Reply(200, {"acknowledged": True})


def counts(script: Script, source: int, dest: int) -> Script:
    """The refresh and the two counts ``move_alias`` asks for before touching the alias."""
    return (script.expect("POST", "/books-v2/_refresh", Reply(200, {"_shards": {"failed": 0}}))
            .expect("POST", "/books-v1/_count", Reply(200, {"count": source}))
            .expect("POST", "/books-v2/_count", Reply(200, {"count": dest})))


def test_alias_is_left_alone_when_counts_disagree() -> None:
    script = counts(Script(), source=10, dest=8)
    with pytest.raises(ReindexError, match="books-v1 has 10 documents but books-v2 has 8 and 1 went to the dead"):
        move_alias(scripted_client(script), "books", "books-v2", "books-v1", dead_lettered=1)
    assert script.sent("POST", "/_aliases") == []
    assert [r.path for r in script.requests] == ["/books-v2/_refresh", "/books-v1/_count", "/books-v2/_count"]


def test_alias_moves_in_one_atomic_request_when_counts_agree() -> None:
    script = counts(Script(), source=10, dest=9)
    script.respond("HEAD", "/_alias/books", lambda request: Reply(200))
    script.expect("GET", "/_alias/books", Reply(200, {"books-v1": {"aliases": {"books": {}}}}))
    script.expect("POST", "/_aliases", ACKNOWLEDGED)

    said = move_alias(scripted_client(script), "books", "books-v2", "books-v1", dead_lettered=1)

    (update,) = script.sent("POST", "/_aliases")
    assert update.body == {"actions": [{"remove": {"index": "books-v1", "alias": "books"}},
                                       {"add": {"index": "books-v2", "alias": "books"}}]}
    assert said == "alias books: books-v1 -> books-v2"
    assert script.unused() == {} and script.unexpected == []


def test_alias_that_does_not_exist_yet_is_only_added() -> None:
    script = counts(Script(), source=3, dest=3)
    script.expect("HEAD", "/books", NOT_FOUND).respond("HEAD", "/_alias/books", lambda request: NOT_FOUND)
    script.expect("POST", "/_aliases", ACKNOWLEDGED)

    move_alias(scripted_client(script), "books", "books-v2", "books-v1", dead_lettered=0)

    (update,) = script.sent("POST", "/_aliases")
    assert update.body == {"actions": [{"add": {"index": "books-v2", "alias": "books"}}]}


def test_alias_name_that_is_an_index_is_refused() -> None:
    script = counts(Script(), source=3, dest=3)
    script.expect("HEAD", "/books", Reply(200)).respond("HEAD", "/_alias/books", lambda request: NOT_FOUND)
    with pytest.raises(ReindexError, match="'books' is an index, not an alias"):
        move_alias(scripted_client(script), "books", "books-v2", "books-v1", dead_lettered=0)
    assert script.sent("POST", "/_aliases") == []


def pit_cluster(sorted_search: Reply) -> Script:
    """An OpenSearch 2.19 node that opens PIT "pit-1" and answers the probe search with ``sorted_search``."""
    return (Script().expect("GET", "/", opensearch_info("2.19.1"))
            .expect("POST", "/books/_search/point_in_time", Reply(200, {"pit_id": "pit-1"}))
            .expect("POST", "/_search", sorted_search)
            .expect("DELETE", "/_search/point_in_time", Reply(200, {"pits": [{"pit_id": "pit-1"}]})))


def test_pit_reading_is_used_when_the_pit_sort_works() -> None:
    script = pit_cluster(Reply(200, {"hits": {"hits": []}}))
    assert supports_pit_reading(engine_for(scripted_client(script)), "books") is True
    (probe,) = script.sent("POST", "/_search")
    assert probe.body["pit"]["id"] == "pit-1" and probe.body["sort"] == [{"_id": "asc"}]
    assert script.sent("DELETE", "/_search/point_in_time")[0].body == {"pit_id": ["pit-1"]}
    assert script.unused() == {}


def test_refused_pit_sort_falls_back_to_scroll_and_still_closes_the_pit() -> None:
    refusal = error_reply(400, "illegal_argument_exception", "Fielddata access on the _id field is disallowed")
    script = pit_cluster(refusal)
    assert supports_pit_reading(engine_for(scripted_client(script)), "books") is False
    assert script.sent("DELETE", "/_search/point_in_time")[0].body == {"pit_id": ["pit-1"]}
    assert script.unused() == {}


def test_clusters_before_pit_are_not_asked_for_one() -> None:
    script = Script().expect("GET", "/", opensearch_info("2.3.0"))
    assert supports_pit_reading(engine_for(scripted_client(script)), "books") is False
    assert [(r.method, r.path) for r in script.requests] == [("GET", "/")]


def hit(doc_id: str, position: int) -> dict:
    return {"_id": doc_id, "_source": {"title": f"t{doc_id}"}, "_seq_no": position, "_primary_term": 1,
            "sort": [doc_id]}


def page(*hits: dict, scroll_id: str | None = None) -> Reply:
    body: dict = {"hits": {"hits": list(hits)}}
    if scroll_id:
        body["_scroll_id"] = scroll_id
    return Reply(200, body)


def test_scroll_reading_takes_every_page_and_clears_the_scroll() -> None:
    script = (Script().expect("POST", "/books/_search", page(hit("a", 0), hit("b", 1), scroll_id="s1"))
              .expect("POST", "/_search/scroll", page(hit("c", 2), scroll_id="s2"), page(scroll_id="s2"))
              .expect("DELETE", "/_search/scroll", Reply(200, {"succeeded": True})))
    reader = SliceReader(engine_for(scripted_client(script)), "books", 1, 2, SliceState(), page_size=2,
                         use_pit=False, guard_writes=True)

    documents = list(reader)

    assert [(d.doc_id, d.write_guard) for d in documents] == [("a", (0, 1)), ("b", (1, 1)), ("c", (2, 1))]
    (first,) = script.sent("POST", "/books/_search")
    assert first.params["scroll"] and first.body["slice"] == {"id": 1, "max": 2}
    assert [r.body["scroll_id"] for r in script.sent("POST", "/_search/scroll")] == ["s1", "s2"]
    assert script.sent("DELETE", "/_search/scroll")[0].body == {"scroll_id": ["s2"]}
    assert script.unused() == {}


def test_pit_reading_continues_after_the_previous_pages_last_sort_values() -> None:
    state = SliceState(pit="pit-1", cursor=["a"])
    script = (Script().expect("POST", "/_search", page(),  # the checkpointed PIT is still alive
                              page(hit("b", 1), hit("c", 2)), page(hit("d", 3))))
    reader = SliceReader(engine_for(scripted_client(script)), "books", 0, 1, state, page_size=2, use_pit=True)

    documents = list(reader)

    assert [d.doc_id for d in documents] == ["b", "c", "d"] and documents[-1].position == ["d"]
    alive, first, second = script.sent("POST", "/_search")
    assert alive.body["size"] == 0 and alive.body["pit"]["id"] == "pit-1"
    assert first.body["search_after"] == ["a"] and first.body["sort"] == [{"_id": "asc"}]
    assert second.body["search_after"] == ["c"] and second.body["pit"]["id"] == "pit-1"
    assert "slice" not in first.body
    assert script.unused() == {}


def test_a_pit_that_lost_shards_is_opened_again_and_the_page_read_from_the_same_cursor() -> None:
    state = SliceState(pit="pit-1", cursor=["a"])
    partial = Reply(200, {"_shards": {"total": 3, "failed": 1}, "hits": {"hits": [hit("c", 2)]}})
    missing = error_reply(404, "search_context_missing_exception", "No search context found for id [7]")
    script = (Script().expect("POST", "/_search", page(), partial, missing, page(hit("b", 1)))
              .expect("POST", "/books/_search/point_in_time", Reply(200, {"pit_id": "pit-2"}),
                      Reply(200, {"pit_id": "pit-3"})))
    reader = SliceReader(engine_for(scripted_client(script)), "books", 0, 1, state, page_size=2, use_pit=True)

    documents = list(reader)

    assert [d.doc_id for d in documents] == ["b"], "a partial page must not be taken"
    _, partial_read, missing_read, good_read = script.sent("POST", "/_search")
    assert all(r.params["allow_partial_search_results"] == "false" for r in (partial_read, missing_read, good_read))
    assert [r.body["pit"]["id"] for r in (partial_read, missing_read, good_read)] == ["pit-1", "pit-2", "pit-3"]
    assert all(r.body["search_after"] == ["a"] for r in (partial_read, missing_read, good_read))
    assert state.pit == "pit-3"
    opened = script.sent("POST", "/books/_search/point_in_time")
    assert all(r.params["allow_partial_pit_creation"] == "false" for r in opened)
    assert script.unused() == {}


def test_a_slice_whose_shards_stay_lost_stops_after_the_wait_naming_it() -> None:
    lost = error_reply(503, "search_phase_execution_exception", "all shards failed")
    script = (Script().expect("POST", "/_search", page(), *[lost] * 10)
              .expect("POST", "/books/_search/point_in_time", *[lost] * 10))
    reader = SliceReader(engine_for(scripted_client(script, max_retries=0)), "books", 2, 4,
                         SliceState(pit="pit-1"), page_size=2, use_pit=True, unavailable_timeout_s=0.8)

    with pytest.raises(ClusterUnavailableError, match=r"Reading slice 2 of 'books' failed for 0.8 s: .*all shards"):
        list(reader)


def test_an_index_another_share_created_meanwhile_is_taken_and_other_refusals_raise() -> None:
    body = {"settings": {"number_of_shards": 1}}
    raced = Script().expect("PUT", "/books-v2", error_reply(
        400, "resource_already_exists_exception", "index [books-v2/uuid] already exists"))
    assert engine_for(scripted_client(raced)).create_index_unless_exists("books-v2", body) is False
    assert raced.sent("PUT", "/books-v2")[0].body == body
    made = Script().expect("PUT", "/books-v2", ACKNOWLEDGED)
    assert engine_for(scripted_client(made)).create_index_unless_exists("books-v2", body) is True
    refused = Script().expect("PUT", "/books-v2", error_reply(400, "illegal_argument_exception", "unknown setting"))
    with pytest.raises(Exception, match="unknown setting"):
        engine_for(scripted_client(refused)).create_index_unless_exists("books-v2", body)


def test_both_engines_read_the_type_of_an_error_response() -> None:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import BadRequestError
    from opensearchpy.exceptions import RequestError

    from milco_os.engines.elasticsearch import ElasticsearchEngine
    from milco_os.engines.opensearch import OpenSearchEngine

    body = {"error": {"type": "resource_already_exists_exception", "reason": "index [x/u] already exists"}}
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "127.0.0.1", 9200))
    assert ElasticsearchEngine.error_type(BadRequestError("x", meta, body)) == "resource_already_exists_exception"
    assert OpenSearchEngine.error_type(RequestError(400, "x", body)) == "resource_already_exists_exception"
    assert OpenSearchEngine.error_type(RequestError(400, "x", "not json")) is None
    assert OpenSearchEngine.error_type(ValueError("x")) is None
