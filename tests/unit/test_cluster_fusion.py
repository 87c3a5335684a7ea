"""What each engine's own fusion sends, when it refuses before sending, and the fallback to fusing here (a fake
client at the transport boundary; tests/integration/test_hybrid.py runs the same on real nodes)."""

from __future__ import annotations

import pytest
from opensearchpy.exceptions import NotFoundError, RequestError

from milco_os.engines.opensearch import OpenSearchEngine
from milco_os.errors import MilcoOsError
from milco_os.index.handle import IndexHandle
from milco_os.index.vector_fields import RankFeatures
from milco_os.engines.base import ClusterVersion
from milco_os.search.cluster_fusion import ElasticsearchRetrievers, NeuralSearchPipeline
from milco_os.search.fusion import Fusion
from milco_os.search.hybrid import search_fused

MILCO = {"size": 40, "query": {"bool": {"should": [{"rank_feature": {"field": "milco_en.x", "linear": {}}}]}}}


class Transport:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict]] = []

    def perform_request(self, method: str, path: str, body: dict | None = None, **_: object) -> dict:
        self.requests.append((method, path, body))
        return {"acknowledged": True}


class Cat:
    def __init__(self, neural_search: str | None) -> None:
        self.neural_search = neural_search

    def plugins(self, format: str) -> list[dict]:
        if self.neural_search == "unlisted":  # OpenSearch Serverless has no _cat/plugins
            raise NotFoundError(404, "Not Found", {"message": "Not Found"})
        return [{"component": "opensearch-neural-search", "version": self.neural_search}] if self.neural_search \
            else [{"component": "opensearch-job-scheduler", "version": "3.6.0.0"}]


class Client:
    """Answers searches from two fixed lists (BM25 for a multi_match, MILCO otherwise); refuses hybrid queries
    when told to."""

    def __init__(self, neural_search: str | None = "3.6.0.0", version: str = "3.6.0",
                 refuse_hybrid: bool = False) -> None:
        self.cat, self.transport, self.number = Cat(neural_search), Transport(), version
        self.refuse_hybrid = refuse_hybrid
        self.searches: list[tuple[dict, dict]] = []

    def info(self) -> dict:
        return {"version": {"number": self.number}}

    def search(self, index: str, body: dict, params: dict | None = None) -> dict:
        self.searches.append((body, params or {}))
        query = body.get("query", {})
        if "hybrid" in query:
            if self.refuse_hybrid:
                raise RequestError(400, "parsing_exception", {"error": {"reason": "unknown query [hybrid]"}})
            hits = [("b", 0.9), ("a", 0.5)]
        elif "multi_match" in query:
            hits = [("a", 7.0), ("b", 5.0), ("c", 1.0)]
        else:
            hits = [("b", 0.8), ("d", 0.4)]
        return {"hits": {"hits": [{"_id": doc, "_score": score, "_source": {"title": doc}} for doc, score in hits]}}


def handle(client: Client) -> IndexHandle:
    engine = OpenSearchEngine(client)
    return IndexHandle(engine, "docs", RankFeatures(ClusterVersion("opensearch", client.number)))


def test_min_max_installs_a_normalization_pipeline_named_by_its_settings() -> None:
    client = Client()
    index = handle(client)
    fusion = Fusion("min_max", "harmonic_mean", bm25_weight=0.3, depth=40)
    result = search_fused(index, "berlin", MILCO, fusion, size=10, from_=0, source=True, filters=(),
                          text_fields=("text",))
    method, path, body = client.transport.requests[0]
    assert method == "PUT" and path.startswith("/_search/pipeline/milco-os-hybrid-")
    assert body["phase_results_processors"] == [{"normalization-processor": {
        "normalization": {"technique": "min_max"},
        "combination": {"technique": "harmonic_mean", "parameters": {"weights": [0.3, 0.7]}}}}]
    sent, params = client.searches[0]
    assert params == {"search_pipeline": path.rsplit("/", 1)[1]}
    assert sent["query"]["hybrid"] == {"queries": [{"multi_match": {"query": "berlin", "fields": ["text"]}},
                                                   MILCO["query"]], "pagination_depth": 40}
    assert [hit.id for hit in result.hits] == ["b", "a"] and result.fused_by.startswith("fused in the cluster")
    search_fused(index, "paris", MILCO, fusion, size=10, from_=0, source=True, filters=(), text_fields=("text",))
    assert len(client.transport.requests) == 1  # installed once


def test_rrf_bodies_follow_the_plugin_version() -> None:
    fusion = Fusion("rrf", rank_constant=20, bm25_weight=0.5)
    newer = NeuralSearchPipeline(OpenSearchEngine(Client("3.6.0.0")))
    older = NeuralSearchPipeline(OpenSearchEngine(Client("2.19.1.0", "2.19.1")))
    assert newer.pipeline_body(fusion)["phase_results_processors"] == [{"score-ranker-processor": {"combination": {
        "technique": "rrf", "rank_constant": 20, "parameters": {"weights": [0.5, 0.5]}}}}]
    assert older.pipeline_body(fusion)["phase_results_processors"] == [{"score-ranker-processor": {"combination": {
        "technique": "rrf", "parameters": {"rank_constant": 20}}}}]
    assert older.weights(fusion) == (1.0, 1.0) and newer.weights(fusion) == (0.5, 0.5)
    assert "weighs the two lists" in older.refusal(Fusion("rrf", bm25_weight=0.3), MILCO)
    assert newer.refusal(Fusion("rrf", bm25_weight=0.3), MILCO) is None


def test_refusals_come_before_any_request() -> None:
    assert "no neural-search 2.19+" in NeuralSearchPipeline(OpenSearchEngine(Client(None))).refusal(
        Fusion("l2"), MILCO)
    assert "no neural-search 2.19+" in NeuralSearchPipeline(OpenSearchEngine(Client("2.18.0.0"))).refusal(
        Fusion("l2"), MILCO)
    rescored = {**MILCO, "rescore": {"window_size": 100}}
    assert "rescores" in NeuralSearchPipeline(OpenSearchEngine(Client())).refusal(Fusion("l2"), rescored)


def test_a_refusal_or_a_refused_request_fuses_here_and_says_why() -> None:
    for client, why in ((Client(None), "no neural-search"), (Client(refuse_hybrid=True), "unknown query [hybrid]")):
        result = search_fused(handle(client), "berlin", MILCO, Fusion("min_max", bm25_weight=0.5), size=2, from_=0,
                              source=True, filters=(), text_fields=("text",))
        assert result.fused_by.startswith("fused here") and why in result.fused_by
        # BM25 a 1, b 0.667, c 0.001; MILCO b 1, d 0.001: b (0.833) first, then a (0.5).
        assert [(hit.id, round(hit.score, 3)) for hit in result.hits] == [("b", 0.833), ("a", 0.5)]
        assert result.hits[0].parts == (5.0, 0.8) and result.hits[0].source == {"title": "b"}


def test_a_cluster_that_will_not_list_its_plugins_fuses_here() -> None:
    client = Client("unlisted")
    result = search_fused(handle(client), "berlin", MILCO, Fusion("rrf"), size=2, from_=0, source=True, filters=(),
                          text_fields=("text",))
    assert result.fused_by.startswith("fused here") and "lists no neural-search" in result.fused_by
    assert not client.transport.requests and all("hybrid" not in body["query"] for body, _ in client.searches)


def test_fusing_in_the_cluster_where_it_cannot_is_an_error() -> None:
    with pytest.raises(MilcoOsError, match="cannot fuse this hybrid search: the cluster lists no neural-search"):
        search_fused(handle(Client(None)), "berlin", MILCO, Fusion("rrf"), size=2, from_=0, source=True,
                     filters=(), text_fields=("text",), fuse_in="cluster")


class EsEngine:
    """Just what the retrievers' refusals read: the version."""

    def __init__(self, major_minor: tuple[int, int]) -> None:
        self.version = type("Version", (), {"major_minor": major_minor})()


def test_elasticsearch_refuses_what_its_retrievers_cannot_do_before_any_request() -> None:
    newest = ElasticsearchRetrievers(EsEngine((9, 2)))
    assert newest.refusal(Fusion("rrf"), MILCO) is None
    assert newest.refusal(Fusion("min_max", bm25_weight=0.3), MILCO) is None
    assert newest.refusal(Fusion("l2", bm25_weight=0.3), MILCO) is None
    assert "equally" in newest.refusal(Fusion("rrf", bm25_weight=0.2), MILCO)
    assert "not harmonic_mean" in newest.refusal(Fusion("min_max", "harmonic_mean"), MILCO)
    assert "rescores" in newest.refusal(Fusion("rrf"), {**MILCO, "rescore": {"window_size": 10}})
    assert "8.14+" in ElasticsearchRetrievers(EsEngine((8, 11))).refusal(Fusion("rrf"), MILCO)
    assert "8.18+" in ElasticsearchRetrievers(EsEngine((8, 17))).refusal(Fusion("min_max"), MILCO)
    assert ElasticsearchRetrievers(EsEngine((8, 18))).refusal(Fusion("min_max"), MILCO) is None
    for version, l2 in (((8, 18), False), ((8, 19), True), ((9, 0), False), ((9, 1), True)):
        assert (ElasticsearchRetrievers(EsEngine(version)).refusal(Fusion("l2"), MILCO) is None) == l2, version


def test_elasticsearch_retriever_bodies() -> None:
    queries = ({"match_all": {}}, MILCO["query"])
    page = {"size": 10, "from": 60}
    assert ElasticsearchRetrievers.request_body(queries, Fusion("rrf", rank_constant=20, depth=50), page) == {
        **page, "retriever": {"rrf": {
            "retrievers": [{"standard": {"query": {"match_all": {}}}}, {"standard": {"query": MILCO["query"]}}],
            "rank_window_size": 70, "rank_constant": 20}}}
    assert ElasticsearchRetrievers.request_body(queries, Fusion("l2", bm25_weight=0.25, depth=100), page) == {
        **page, "retriever": {"linear": {"retrievers": [
            {"retriever": {"standard": {"query": {"match_all": {}}}}, "weight": 0.25, "normalizer": "l2_norm"},
            {"retriever": {"standard": {"query": MILCO["query"]}}, "weight": 0.75, "normalizer": "l2_norm"}],
            "rank_window_size": 100}}}


def test_elasticsearch_fuses_min_max_here_as_its_linear_retriever_would() -> None:
    lists = [[("a", 7.0), ("b", 5.0), ("c", 1.0)], [("b", 0.8), ("d", 0.4)]]
    fused = ElasticsearchRetrievers(EsEngine((9, 2))).fuse_here(lists, Fusion("min_max", bm25_weight=0.5))
    # Elasticsearch's minimum is 0, not neural-search's 0.001: c and d score nothing.
    assert [(hit.id, round(hit.score, 4)) for hit in fused] == [("b", 0.8333), ("a", 0.5), ("c", 0.0), ("d", 0.0)]
