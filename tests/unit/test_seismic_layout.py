"""The SEISMIC vector field: English term-id keys, its mapping, its queries and its quantisation ceiling."""

from __future__ import annotations

import click
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from milco_os.commands.options import index_parameters
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.engines import ClusterVersion
from milco_os.errors import MilcoOsError
from milco_os.index.fields import EN_FIELD, M_FIELD, InvalidVectorError
from milco_os.index.seismic_keys import ID_LIMIT, EnglishIdKeys
from milco_os.index.seismic_ceilings import ceiling_for, measured_ceilings
from milco_os.index.setup import index_body
from milco_os.index.seismic_parameters import (
    MEASURED_CLUSTER_RATIO,
    MEASURED_DOCUMENTS,
    MEASURED_N_POSTINGS,
    Ceilings,
    SeismicIndex,
    SeismicSearch,
    n_postings_for,
    parse_ceilings,
)
from milco_os.index.vector_fields import Seismic, vector_field
from milco_os.search import query_dsl as dsl
from milco_os.search.searcher import SearchOptions, build_body

OPENSEARCH = ClusterVersion("opensearch", "3.6.0")
VOCABULARY = TermVocabulary(tuple(f"w{i}" for i in range(30_522)), tuple(f"p{i}" for i in range(250_002)))
KEYS = EnglishIdKeys()


def vector(en: dict[int, float], m: dict[int, float]) -> SparseVector:
    return SparseVector(np.array(list(en), np.int32), np.array(list(en.values()), np.float32),
                        np.array(list(m), np.int32), np.array(list(m.values()), np.float32))


weights = st.floats(min_value=0.015625, max_value=10, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(en=st.dictionaries(st.integers(0, 30_521), weights, max_size=20),
       m=st.dictionaries(st.integers(0, 250_001), weights, max_size=20))
def test_keys_give_back_every_term_with_english_ids_below_15_bits(en: dict[int, float], m: dict[int, float]) -> None:
    original = vector(en, m)
    fields = KEYS.document_fields(original, VOCABULARY)
    assert set(fields) <= {EN_FIELD, M_FIELD}
    assert all(0 <= int(key) < ID_LIMIT for key in fields.get(EN_FIELD, {}))
    assert KEYS.stored_terms(fields, VOCABULARY) == pytest.approx(original.terms(VOCABULARY))


def test_lexecho_is_keyed_by_piece_and_english_by_id() -> None:
    fields = KEYS.document_fields(vector({7: 2.0}, {5: 1.0, 5 + 65_536: 2.0}), VOCABULARY)
    assert fields == {EN_FIELD: {"7": 2.0}, M_FIELD: {"p5": 1.0, "p65541": 2.0}}
    assert KEYS.key("m", 40_000, VOCABULARY) == (M_FIELD, "p40000")
    assert KEYS.key("en", 40, VOCABULARY) == (EN_FIELD, "40")


def test_an_english_id_seismic_would_fold_is_refused_naming_the_field() -> None:
    wide = TermVocabulary(tuple(f"w{i}" for i in range(ID_LIMIT + 1)), ("p0",))
    with pytest.raises(InvalidVectorError, match=f"field '{EN_FIELD}'.*32,768"):
        KEYS.document_fields(vector({ID_LIMIT: 1.0}, {}), wide)


def test_the_index_body_has_a_seismic_english_field_and_rank_features_lexecho() -> None:
    parameters = SeismicIndex(approximate_threshold=5000, n_postings=300, ceilings=Ceilings(2.0, 4.0))
    body = index_body(Seismic(OPENSEARCH, parameters), passages=False, shards=2, replicas=0)
    properties = body["mappings"]["properties"]
    assert body["settings"]["index"]["sparse"] is True
    assert properties[EN_FIELD] == {"type": "sparse_vector", "method": {"name": "seismic", "parameters": {
        "approximate_threshold": 5000, "n_postings": 300, "cluster_ratio": MEASURED_CLUSTER_RATIO,
        "quantization_ceiling_ingest": 2.0, "quantization_ceiling_search": 4.0}}}
    assert properties[M_FIELD] == {"type": "rank_features"}
    assert body["mappings"]["_meta"]["milco_os"]["key_codec"] == KEYS.codec
    assert Seismic.from_mapping(OPENSEARCH, body["mappings"]).index == parameters


def test_an_index_that_left_neural_search_defaults_reads_back_as_such() -> None:
    method = {"name": "seismic", "parameters": {"n_postings": 300, "quantization_ceiling_ingest": 2.0,
                                                "quantization_ceiling_search": 4.0}}
    read = SeismicIndex.from_method(method)
    assert read.n_postings == 300 and read.ceilings == Ceilings(2.0, 4.0)
    assert read.cluster_ratio is read.summary_prune_ratio is read.approximate_threshold is None
    assert read.method() == method


def test_an_engine_is_asked_for_from_opensearch_3_9_on_and_read_back() -> None:
    native = SeismicIndex(engine="native")
    newer = ClusterVersion("opensearch", "3.9.0")
    body = index_body(vector_field("seismic", newer, native), passages=False, shards=1, replicas=0)
    method = body["mappings"]["properties"][EN_FIELD]["method"]
    assert method["name"] == "seismic" and method["engine"] == "native"
    assert Seismic.from_mapping(newer, body["mappings"]).index == native
    assert "engine" not in SeismicIndex().method()  # neural-search's default, on every version
    with pytest.raises(MilcoOsError, match="--seismic-engine needs OpenSearch 3.9"):
        vector_field("seismic", OPENSEARCH, native)
    given = {"engine": "native", "ceilings": Ceilings(1, 2)}
    assert index_parameters("seismic", given, creating=True) == SeismicIndex(engine="native", ceilings=Ceilings(1, 2))


def test_an_index_with_another_lexecho_layout_is_refused() -> None:
    banded = {"properties": {EN_FIELD: {"type": "sparse_vector"}, "milco_m_b0": {"type": "sparse_vector"}}}
    with pytest.raises(MilcoOsError, match="reindex"):
        Seismic.from_mapping(OPENSEARCH, banded)


def test_passages_and_other_engines_are_refused() -> None:
    with pytest.raises(MilcoOsError, match="passages"):
        index_body(Seismic(OPENSEARCH), passages=True, shards=1, replicas=0)
    with pytest.raises(MilcoOsError, match="OpenSearch 3.3"):
        vector_field("seismic", ClusterVersion("opensearch", "3.2.0"))
    with pytest.raises(MilcoOsError, match="OpenSearch 3.3"):
        vector_field("seismic", ClusterVersion("elasticsearch", "9.1.0"))


def test_the_first_phase_is_one_english_clause_and_the_rescore_adds_lexecho() -> None:
    field = Seismic(OPENSEARCH)
    terms = dsl.query_terms(vector({7: 2.0, 9: 1.0}, {3: 1.5, 40_000: 0.5}), VOCABULARY, keys=field.keys)
    body = build_body("q", terms, SearchOptions(
        size=10, field_parameters={"seismic": SeismicSearch(k=50, top_n=8, heap_factor=3.0)}),
                      field)
    assert body["query"] == {"neural_sparse": {EN_FIELD: {"query_tokens": {"7": 2.0, "9": 1.0},
                                                          "method_parameters": {"k": 50, "top_n": 8,
                                                                                "heap_factor": 3.0}}}}
    rescore = body["rescore"]
    assert rescore["window_size"] == 50
    assert (rescore["query"]["query_weight"], rescore["query"]["rescore_query_weight"]) == (1.0, 1.0)
    assert rescore["query"]["score_mode"] == "total"
    assert rescore["query"]["rescore_query"] == {"bool": {"should": [
        {"rank_feature": {"field": f"{M_FIELD}.p3", "boost": 1.5, "linear": {}}},
        {"rank_feature": {"field": f"{M_FIELD}.p40000", "boost": 0.5, "linear": {}}}]}}


def test_a_query_without_one_view_needs_no_rescore() -> None:
    field = Seismic(OPENSEARCH)
    english = build_body("q", dsl.query_terms(vector({7: 2.0}, {}), VOCABULARY, keys=KEYS), SearchOptions(), field)
    assert "rescore" not in english and "neural_sparse" in english["query"]
    lexecho = build_body("q", dsl.query_terms(vector({}, {3: 1.0}), VOCABULARY, keys=KEYS), SearchOptions(), field)
    assert "rescore" not in lexecho
    assert lexecho["query"] == {"bool": {"should": [{"rank_feature": {"field": f"{M_FIELD}.p3", "boost": 1.0,
                                                                      "linear": {}}}]}}


def test_the_window_covers_the_page_asked_for() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {3: 1.0}), VOCABULARY, keys=KEYS)
    body = build_body("q", terms, SearchOptions(size=300, from_=50), Seismic(OPENSEARCH))
    assert body["rescore"]["window_size"] == 350
    assert build_body("q", terms, SearchOptions(), Seismic(OPENSEARCH))["rescore"]["window_size"] == SeismicSearch.k


def test_two_phase_and_neural_sparse_styles_are_refused() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {}), VOCABULARY, keys=KEYS)
    with pytest.raises(ValueError, match="two-phase"):
        build_body("q", terms, SearchOptions(two_phase=True), Seismic(OPENSEARCH))
    with pytest.raises(ValueError, match="query style"):
        build_body("q", terms, SearchOptions(query_style="neural_sparse"), Seismic(OPENSEARCH))


def test_only_english_weights_are_clipped() -> None:
    field = Seismic(OPENSEARCH, SeismicIndex(ceilings=Ceilings(2.0, 5.0)))
    assert not field.clipped(vector({1: 2.0}, {1: 90.0}))
    assert field.clipped(vector({1: 2.5}, {}))


@pytest.mark.parametrize(("largest", "ceiling"), [(1.0, 1.3), (2.4, 3.0), (21.3, 27), (0.0123, 0.016)])
def test_ceilings_have_headroom_and_two_significant_digits(largest: float, ceiling: float) -> None:
    assert ceiling_for(largest) == pytest.approx(ceiling)


class FixedEncoder:
    """Returns the same document and query vectors for every text."""

    def __init__(self, document: SparseVector, query: SparseVector) -> None:
        self.document, self.query = document, query

    def encode_documents(self, texts, **options):
        return [self.document for _ in texts]

    def encode_queries(self, texts, **options):
        return [self.query for _ in texts]


def test_measured_ceilings_follow_the_english_weights_and_keep_the_given_ones_without_them() -> None:
    encoder = FixedEncoder(vector({1: 1.6}, {2: 30.0}), vector({1: 4.0}, {2: 30.0}))
    measured = measured_ceilings(encoder, ["a", "b", " "], SeismicIndex(approximate_threshold=10))
    assert measured == SeismicIndex(approximate_threshold=10, ceilings=Ceilings(2.0, 5.0))
    lexecho_only = FixedEncoder(vector({}, {2: 30.0}), vector({}, {2: 30.0}))
    given = SeismicIndex(ceilings=Ceilings(1.0, 2.0))
    assert measured_ceilings(lexecho_only, ["a"], given) == given


def test_ceiling_flags() -> None:
    assert parse_ceilings("3:12") == Ceilings(3.0, 12.0)
    for bad in ("3", "3:x", "3:0", "1:2:3", "3:12:20:25"):
        with pytest.raises(ValueError, match="INGEST:SEARCH"):
            parse_ceilings(bad)
    given = {"approximate_threshold": 10}
    with pytest.raises(click.UsageError, match="--approximate-threshold applies to another --vector-field, not "
                                               "rank_features"):
        index_parameters("rank_features", given, creating=True)
    with pytest.raises(click.UsageError, match="--approximate-threshold applies when an index gets its MILCO"):
        index_parameters("seismic", given, creating=False)
    with pytest.raises(click.UsageError, match="--quantization-ceilings"):
        index_parameters("seismic", given, creating=True)
    assert index_parameters("seismic", {**given, "ceilings": Ceilings(1, 2)}, creating=True) == \
        SeismicIndex(approximate_threshold=10, ceilings=Ceilings(1, 2))
    assert index_parameters("seismic", {}, creating=False) is None
    assert index_parameters(None, {}, creating=True) is None


def test_filters_restrict_the_candidates_themselves() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {3: 1.0}), VOCABULARY, keys=KEYS)
    language = {"term": {"lang": "ja"}}
    body = build_body("q", terms, SearchOptions(filters=(language,)), Seismic(OPENSEARCH))
    first = body["query"]["bool"]["must"][0]
    assert body["query"]["bool"]["filter"] == [language]
    assert first["neural_sparse"][EN_FIELD]["method_parameters"]["filter"] == {"bool": {"filter": [language]}}


def test_a_query_weight_above_the_search_ceiling_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    field = Seismic(OPENSEARCH, SeismicIndex(ceilings=Ceilings(3.0, 4.0)))
    within = dsl.query_terms(vector({7: 3.9}, {3: 80.0}), VOCABULARY, keys=field.keys)
    build_body("q", within, SearchOptions(), field)
    assert not caplog.records
    above = dsl.query_terms(vector({7: 4.5}, {3: 1.0}), VOCABULARY, keys=field.keys)
    build_body("q", above, SearchOptions(), field)
    assert [record.getMessage() for record in caplog.records] == [
        "query weight 4.5 in English is above the index's quantisation ceiling 4.0: approximate search counts it "
        "as 4.0"]


def test_a_bm25_hybrid_adds_bm25_once() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {3: 1.0}), VOCABULARY, keys=KEYS)
    body = build_body("capital", terms, SearchOptions(fusion="sum", bm25_weight=0.5), Seismic(OPENSEARCH))
    first_milco, bm25 = body["query"]["bool"]["should"]
    assert "neural_sparse" in first_milco["bool"]["should"][0] and bm25["multi_match"]["boost"] == 0.5
    assert "multi_match" not in str(body["rescore"])  # the rescore adds LexEcho to a score that has BM25 already


def test_n_postings_follow_the_expected_collection_unless_given() -> None:
    assert SeismicIndex().n_postings == MEASURED_N_POSTINGS == n_postings_for(MEASURED_DOCUMENTS)
    assert n_postings_for(10_000) == MEASURED_N_POSTINGS  # smaller segments are scored exactly anyway
    sizes = [MEASURED_DOCUMENTS * factor for factor in (1, 3, 10, 100)]
    assert all(a < b for a, b in zip(map(n_postings_for, sizes), map(n_postings_for, sizes[1:])))
    ten_million = index_parameters("seismic", {"expected_documents": 10_000_000, "ceilings": Ceilings(1, 2)},
                                   creating=True)
    assert ten_million.n_postings == n_postings_for(10_000_000)
    given = index_parameters("seismic", {"expected_documents": 10_000_000, "n_postings": 500,
                                         "ceilings": Ceilings(1, 2)}, creating=True)
    assert given.n_postings == 500
    body = index_body(Seismic(OPENSEARCH, ten_million), passages=False, shards=1, replicas=0)
    assert body["mappings"]["properties"][EN_FIELD]["method"]["parameters"]["n_postings"] == ten_million.n_postings


def test_a_reindex_sizes_the_index_by_its_source_unless_told() -> None:
    ceilings = {"ceilings": Ceilings(1, 2)}
    sized = index_parameters("seismic", ceilings, creating=True, documents=lambda: 5_000_000)
    assert sized.n_postings == n_postings_for(5_000_000)
    told = index_parameters("seismic", {**ceilings, "expected_documents": 200_000}, creating=True,
                            documents=lambda: 5_000_000)
    assert told.n_postings == n_postings_for(200_000)
    assert index_parameters("seismic", {**ceilings, "n_postings": 700}, creating=True,
                            documents=lambda: 5_000_000).n_postings == 700
    assert index_parameters("rank_features", {}, creating=True, documents=lambda: 5_000_000) is None
