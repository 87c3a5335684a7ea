"""A real OpenSearch node: health, rank_features mappings, linear rank_feature scoring, index creation races."""

from __future__ import annotations

import random

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import RequestError

from milco_os.engines import engine_for

pytestmark = pytest.mark.integration

FEATURE_NAMES = [f"t{i}" for i in range(12)]


def test_cluster_is_green(opensearch: OpenSearch) -> None:
    health = opensearch.cluster.health(wait_for_status="green")
    assert health["status"] == "green"
    assert opensearch.info()["version"]["distribution"] == "opensearch"


def test_mapper_extras_module_is_loaded(opensearch: OpenSearch) -> None:
    nodes = opensearch.nodes.info(metric="plugins")["nodes"]
    modules = {module["name"] for node in nodes.values() for module in node["modules"]}
    assert "mapper-extras" in modules


def test_rank_features_mapping_is_accepted(opensearch: OpenSearch, index_name: str) -> None:
    opensearch.indices.create(
        index=index_name,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"terms": {"type": "rank_features"}}},
        },
    )
    mapping = opensearch.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["properties"]["terms"]["type"] == "rank_features"


def test_an_index_that_exists_already_is_told_apart_from_a_refused_body(opensearch: OpenSearch,
                                                                       index_name: str) -> None:
    engine, body = engine_for(opensearch), {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    assert engine.create_index_unless_exists(index_name, body) is True
    assert engine.create_index_unless_exists(index_name, body) is False
    with pytest.raises(RequestError, match="unknown setting"):
        engine.create_index_unless_exists(f"{index_name}-other", {"settings": {"index.no_such_setting": 1}})


def test_linear_rank_feature_bool_scores_sum_of_boost_times_value(opensearch: OpenSearch, index_name: str) -> None:
    rng = random.Random(20260)
    opensearch.indices.create(
        index=index_name,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"terms": {"type": "rank_features"}}},
        },
    )
    documents = {
        f"doc-{n}": {name: round(rng.uniform(0.01, 5.0), 4) for name in rng.sample(FEATURE_NAMES, rng.randint(1, 6))}
        for n in range(40)
    }
    for doc_id, terms in documents.items():
        opensearch.index(index=index_name, id=doc_id, body={"terms": terms})
    opensearch.indices.refresh(index=index_name)

    query_terms = {name: round(rng.uniform(0.1, 3.0), 3) for name in rng.sample(FEATURE_NAMES, 4)}
    response = opensearch.search(
        index=index_name,
        body={
            "size": len(documents),
            "query": {
                "bool": {
                    "should": [
                        {"rank_feature": {"field": f"terms.{name}", "boost": boost, "linear": {}}}
                        for name, boost in query_terms.items()
                    ]
                }
            },
        },
    )
    scores = {hit["_id"]: hit["_score"] for hit in response["hits"]["hits"]}
    expected = {
        doc_id: sum(boost * terms[name] for name, boost in query_terms.items() if name in terms)
        for doc_id, terms in documents.items()
    }
    matching = {doc_id for doc_id, score in expected.items() if score > 0}
    assert set(scores) == matching
    for doc_id in matching:
        # rank_features keeps 9 significant bits of each value: within 0.5%.
        assert scores[doc_id] == pytest.approx(expected[doc_id], rel=5e-3)
