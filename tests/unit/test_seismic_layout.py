"""The SEISMIC vector field: term-id keys in bands, its mapping, its queries and its quantisation ceilings."""

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
from milco_os.index.id_bands import BAND_FIELDS, BAND_WIDTH, BandedIdKeys
from milco_os.index.seismic_ceilings import ceiling_for, measured_ceilings
from milco_os.index.setup import index_body
from milco_os.index.seismic_parameters import Ceilings, SeismicIndex, SeismicSearch, parse_ceilings
from milco_os.index.vector_fields import Seismic, vector_field
from milco_os.search import query_dsl as dsl
from milco_os.search.searcher import SearchOptions, build_body

OPENSEARCH = ClusterVersion("opensearch", "3.6.0")
VOCABULARY = TermVocabulary(tuple(f"w{i}" for i in range(30_522)), tuple(f"p{i}" for i in range(250_002)))
KEYS = BandedIdKeys()


def vector(en: dict[int, float], m: dict[int, float]) -> SparseVector:
    return SparseVector(np.array(list(en), np.int32), np.array(list(en.values()), np.float32),
                        np.array(list(m), np.int32), np.array(list(m.values()), np.float32))


weights = st.floats(min_value=0.015625, max_value=10, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(en=st.dictionaries(st.integers(0, 30_521), weights, max_size=20),
       m=st.dictionaries(st.integers(0, 250_001), weights, max_size=20))
def test_banded_keys_give_back_every_term_and_stay_below_15_bits(en: dict[int, float], m: dict[int, float]) -> None:
    original = vector(en, m)
    fields = KEYS.document_fields(original, VOCABULARY)
    assert set(fields) <= {EN_FIELD, *BAND_FIELDS}
    assert all(0 <= int(key) < BAND_WIDTH for terms in fields.values() for key in terms)
    assert KEYS.stored_terms(fields, VOCABULARY) == pytest.approx(original.terms(VOCABULARY))


def test_ids_that_fold_to_the_same_16_bits_land_in_different_fields() -> None:
    fields = KEYS.document_fields(vector({}, {5: 1.0, 5 + 65_536: 2.0, 5 + 32_768: 3.0}), VOCABULARY)
    assert fields == {BAND_FIELDS[0]: {"5": 1.0}, BAND_FIELDS[2]: {"5": 2.0}, BAND_FIELDS[1]: {"5": 3.0}}
    assert KEYS.key("m", 40_000, VOCABULARY) == (BAND_FIELDS[1], str(40_000 - BAND_WIDTH))


def test_an_id_beyond_the_bands_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidVectorError, match=f"field '{M_FIELD}'.*262,144"):
        KEYS.document_fields(vector({}, {262_144: 1.0}), VOCABULARY)


def test_the_index_body_has_banded_sparse_vector_fields_and_sparse_index() -> None:
    parameters = SeismicIndex(approximate_threshold=5000, n_postings=300, en_ceilings=Ceilings(2.0, 4.0),
                              m_ceilings=Ceilings(9.0, 12.0))
    body = index_body(Seismic(OPENSEARCH, parameters), passages=False, shards=2, replicas=0)
    properties = body["mappings"]["properties"]
    assert M_FIELD not in properties and body["settings"]["index"]["sparse"] is True
    assert properties[EN_FIELD] == {"type": "sparse_vector", "method": {"name": "seismic", "parameters": {
        "approximate_threshold": 5000, "n_postings": 300, "quantization_ceiling_ingest": 2.0,
        "quantization_ceiling_search": 4.0}}}
    assert all(properties[band]["method"]["parameters"]["quantization_ceiling_ingest"] == 9.0 for band in BAND_FIELDS)
    assert body["mappings"]["_meta"]["milco_os"]["vector_fields"]["source"] == list(BAND_FIELDS)
    assert Seismic.from_mapping(OPENSEARCH, body["mappings"]).index == parameters


def test_passages_and_other_engines_are_refused() -> None:
    with pytest.raises(MilcoOsError, match="passages"):
        index_body(Seismic(OPENSEARCH), passages=True, shards=1, replicas=0)
    with pytest.raises(MilcoOsError, match="OpenSearch 3.3"):
        vector_field("seismic", ClusterVersion("opensearch", "3.2.0"))
    with pytest.raises(MilcoOsError, match="OpenSearch 3.3"):
        vector_field("seismic", ClusterVersion("elasticsearch", "9.1.0"))


def test_the_query_has_one_clause_per_field_and_an_exact_rescore_of_its_candidates() -> None:
    field = Seismic(OPENSEARCH)
    terms = dsl.query_terms(vector({7: 2.0, 9: 1.0}, {3: 1.5, 40_000: 0.5}), VOCABULARY, keys=field.keys)
    body = build_body("q", terms, SearchOptions(
        size=10, field_parameters={"seismic": SeismicSearch(k=50, top_n=8, heap_factor=3.0)}),
                      field)
    first = body["query"]
    tokens = {field: spec["query_tokens"] for clause in first["bool"]["should"]
              for field, spec in clause["neural_sparse"].items()}
    assert tokens == {EN_FIELD: {"7": 2.0, "9": 1.0}, BAND_FIELDS[0]: {"3": 1.5},
                      BAND_FIELDS[1]: {str(40_000 - BAND_WIDTH): 0.5}}
    assert {str(clause["neural_sparse"][next(iter(clause["neural_sparse"]))]["method_parameters"])
            for clause in first["bool"]["should"]} == {str({"k": 50, "top_n": 8, "heap_factor": 3.0})}
    rescore = body["rescore"]
    assert rescore["window_size"] == 50 and rescore["query"]["query_weight"] == 0.0
    for clause in rescore["query"]["rescore_query"]["bool"]["should"]:
        parameters = next(iter(clause["neural_sparse"].values()))["method_parameters"]
        assert parameters == {"k": 150, "filter": first}  # at most 3 fields x k candidates: all scored exactly


def test_two_phase_and_neural_sparse_styles_are_refused() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {}), VOCABULARY, keys=BandedIdKeys())
    with pytest.raises(ValueError, match="two-phase"):
        build_body("q", terms, SearchOptions(two_phase=True), Seismic(OPENSEARCH))
    with pytest.raises(ValueError, match="query style"):
        build_body("q", terms, SearchOptions(query_style="neural_sparse"), Seismic(OPENSEARCH))


def test_clipping_is_per_view() -> None:
    field = Seismic(OPENSEARCH, SeismicIndex(en_ceilings=Ceilings(2.0, 5.0), m_ceilings=Ceilings(10.0, 5.0)))
    assert not field.clipped(vector({1: 2.0}, {1: 9.0}))
    assert field.clipped(vector({1: 2.5}, {}))
    assert field.clipped(vector({}, {1: 10.5}))


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


def test_measured_ceilings_follow_each_view_and_keep_defaults_for_an_empty_one() -> None:
    encoder = FixedEncoder(vector({1: 1.6}, {}), vector({1: 4.0}, {}))
    measured = measured_ceilings(encoder, ["a", "b", " "], SeismicIndex(approximate_threshold=10))
    assert measured == SeismicIndex(approximate_threshold=10, en_ceilings=Ceilings(2.0, 5.0))


def test_ceiling_flags() -> None:
    assert parse_ceilings("3:12") == (Ceilings(3.0, 12.0), Ceilings(3.0, 12.0))
    assert parse_ceilings("3:12:20:25") == (Ceilings(3.0, 12.0), Ceilings(20.0, 25.0))
    for bad in ("3", "3:x", "3:0", "1:2:3"):
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
    assert index_parameters("seismic", {**given, "ceilings": (Ceilings(1, 2), Ceilings(3, 4))}, creating=True) == \
        SeismicIndex(approximate_threshold=10, en_ceilings=Ceilings(1, 2), m_ceilings=Ceilings(3, 4))
    assert index_parameters("seismic", {}, creating=False) is None
    assert index_parameters(None, {}, creating=True) is None


def test_filters_restrict_the_candidates_themselves() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {3: 1.0}), VOCABULARY, keys=BandedIdKeys())
    language = {"term": {"lang": "ja"}}
    body = build_body("q", terms, SearchOptions(filters=(language,)), Seismic(OPENSEARCH))
    first = body["query"]["bool"]["must"][0]
    assert body["query"]["bool"]["filter"] == [language]
    for clause in first["bool"]["should"]:
        assert next(iter(clause["neural_sparse"].values()))["method_parameters"]["filter"] == \
            {"bool": {"filter": [language]}}


def test_a_query_weight_above_the_search_ceiling_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    field = Seismic(OPENSEARCH, SeismicIndex(en_ceilings=Ceilings(3.0, 4.0), m_ceilings=Ceilings(3.0, 9.0)))
    within = dsl.query_terms(vector({7: 3.9}, {3: 8.0}), VOCABULARY, keys=field.keys)
    build_body("q", within, SearchOptions(), field)
    assert not caplog.records
    above = dsl.query_terms(vector({7: 3.0}, {3: 9.5}), VOCABULARY, keys=field.keys)
    build_body("q", above, SearchOptions(), field)
    assert [record.getMessage() for record in caplog.records] == [
        "query weight 9.5 in LexEcho is above the index's quantisation ceiling 9.0: approximate search counts it "
        "as 9.0"]


def test_a_bm25_hybrid_is_rescored_as_a_hybrid() -> None:
    terms = dsl.query_terms(vector({7: 2.0}, {3: 1.0}), VOCABULARY, keys=BandedIdKeys())
    body = build_body("capital", terms, SearchOptions(bm25_weight=0.5), Seismic(OPENSEARCH))
    first_milco, bm25 = body["query"]["bool"]["should"]
    rescore_milco, rescore_bm25 = body["rescore"]["query"]["rescore_query"]["bool"]["should"]
    assert rescore_bm25 == bm25 and bm25["multi_match"]["boost"] == 0.5
    exact = rescore_milco["bool"]["should"][0]["bool"]["should"]
    assert all(next(iter(clause["neural_sparse"].values()))["method_parameters"]["filter"] ==
               first_milco["bool"]["should"][0] for clause in exact)
