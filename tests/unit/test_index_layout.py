"""Index bodies: the vector field type is applied to every vector field and recorded in ``_meta``."""

from __future__ import annotations

import pytest

from milco_os.encoding.sparse import TermVocabulary
from milco_os.engines import ClusterVersion
from milco_os.errors import MilcoOsError
from milco_os.index.feature_names import encode_key
from milco_os.index.fields import KeyTables
from milco_os.index.handle import stored_vectors_in_source
from milco_os.index.setup import incompatibilities, index_body
from milco_os.index.seismic_parameters import SeismicIndex
from milco_os.index.vector_fields import ElasticsearchSparseVector, RankFeatures, vector_field

ES_9_2 = ClusterVersion("elasticsearch", "9.2.4")
OPENSEARCH = ClusterVersion("opensearch", "2.19.6")


@pytest.mark.parametrize("passages", [False, True])
def test_vector_type_reaches_every_vector_field_and_the_meta(passages: bool) -> None:
    body = index_body(ElasticsearchSparseVector(ES_9_2), passages=passages, shards=2, replicas=0)
    properties = body["mappings"]["properties"]
    fields = [properties.get("milco_en"), properties.get("milco_m")]
    if passages:
        fields += [properties["milco_passages"]["properties"][name] for name in ("milco_en", "milco_m")]
    present = [field for field in fields if field]
    assert present and all(field == {"type": "sparse_vector", "index_options": {"prune": False}} for field in present)
    assert body["mappings"]["_meta"]["milco_os"]["vector_field_type"] == "sparse_vector"
    assert body["settings"]["index"]["number_of_shards"] == 2
    assert body["settings"]["index"]["mapping.exclude_source_vectors"] is False


def test_rank_features_stays_the_default_and_pipelines_can_be_left_out() -> None:
    body = index_body(RankFeatures(OPENSEARCH), passages=False, shards=1, replicas=1, default_pipeline=False)
    assert body["mappings"]["properties"]["milco_en"] == {"type": "rank_features"}
    assert "default_pipeline" not in body["settings"]["index"]
    assert index_body(RankFeatures(OPENSEARCH), passages=False, shards=1, replicas=1)["settings"]["index"]["default_pipeline"] == "milco-stamp"


def test_an_index_of_the_other_vector_type_is_incompatible() -> None:
    existing = index_body(RankFeatures(OPENSEARCH), passages=False, shards=1, replicas=1)["mappings"]
    wanted = index_body(ElasticsearchSparseVector(ES_9_2), passages=False, shards=1, replicas=1)
    assert any("milco_en" in problem for problem in incompatibilities(existing, wanted))
    with pytest.raises(MilcoOsError, match="unknown vector field type"):
        vector_field("dense_vector", OPENSEARCH)


@pytest.mark.parametrize(("version", "reason"), [
    (OPENSEARCH, "needs Elasticsearch 8.11\\+, not opensearch 2.19.6"),
    (ClusterVersion("elasticsearch", "8.10.4"), "needs Elasticsearch 8.11\\+, not elasticsearch 8.10.4"),
])
def test_sparse_vector_is_refused_where_the_cluster_has_no_such_field(version: ClusterVersion, reason: str) -> None:
    with pytest.raises(MilcoOsError, match=reason):
        vector_field("sparse_vector", version)
    assert isinstance(vector_field("rank_features", version), RankFeatures)


@pytest.mark.parametrize(("number", "mapping", "settings", "source"), [
    ("8.11.0", {"type": "sparse_vector"}, {}, True),
    ("8.19.21", {"type": "sparse_vector", "index_options": {"prune": False}}, {}, True),
    ("9.2.4", {"type": "sparse_vector", "index_options": {"prune": False}},
     {"mapping.exclude_source_vectors": False}, {"exclude_vectors": False}),
])
def test_sparse_vector_follows_the_cluster_version(number: str, mapping: dict, settings: dict, source) -> None:
    field = vector_field("sparse_vector", ClusterVersion("elasticsearch", number))
    assert (field.field_mapping(), field.index_settings(), field.explain_source()) == (mapping, settings, source)


def test_keys_are_escaped_once_per_vocabulary_and_held_for_the_last_few() -> None:
    tables = KeyTables(capacity=2)
    first = TermVocabulary(("a.b", "%", "x y"), ("▁Berlin", ""))
    en_keys, m_keys = tables(first)
    assert en_keys == tuple(map(encode_key, first.en_pieces)) and m_keys == ("▁Berlin", "%")
    assert tables(first)[0] is en_keys
    second, third = TermVocabulary(("c",), ("d",)), TermVocabulary(("e",), ("f",))
    assert tables(second) == (("c",), ("d",)) and tables(third) == (("e",), ("f",))
    assert tables(first)[0] is not en_keys and tables(first)[0] == en_keys  # the oldest was let go


@pytest.mark.parametrize("passages", [False, True])
def test_vectors_can_be_left_out_of_source_for_every_strategy(passages: bool) -> None:
    for field in (RankFeatures(OPENSEARCH), ElasticsearchSparseVector(ES_9_2)):
        kept = index_body(field, passages=passages, shards=1, replicas=1)
        assert "_source" not in kept["mappings"] and stored_vectors_in_source(kept["mappings"], field)
        body = index_body(field, passages=passages, shards=1, replicas=1, vectors_in_source=False)
        prefix = "milco_passages." if passages else ""
        assert body["mappings"]["_source"] == {"excludes": [prefix + "milco_en", prefix + "milco_m"]}
        assert not stored_vectors_in_source(body["mappings"], field)
    seismic = vector_field("seismic", ClusterVersion("opensearch", "3.6.0"), SeismicIndex())
    excluded = index_body(seismic, passages=False, shards=1, replicas=1, vectors_in_source=False)
    assert excluded["mappings"]["_source"]["excludes"] == ["milco_en", "milco_m"]


@pytest.mark.parametrize("source, kept", [
    ({}, True),
    ({"excludes": ["secret"]}, True),
    ({"excludes": ["milco_*"]}, False),
    ({"excludes": ["milco_passages.*"]}, False),
    ({"enabled": False}, False),
])
def test_where_an_index_keeps_its_vectors_is_read_from_its_source_settings(source: dict, kept: bool) -> None:
    assert stored_vectors_in_source({"_source": source}, RankFeatures(OPENSEARCH)) is kept
