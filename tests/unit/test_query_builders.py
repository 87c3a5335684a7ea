"""Query DSL builders: pure functions of the query vector."""

from __future__ import annotations

from dataclasses import dataclass, replace

import click
from click.testing import CliRunner
import numpy as np
import pytest

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.engines import ClusterVersion
from milco_os.index.seismic_parameters import SeismicSearch
from milco_os.index.vector_fields import ElasticsearchSparseVector, RankFeatures, SparseVectorPruning
from milco_os.search import query_dsl as dsl
from milco_os.search.searcher import TWO_PHASE_FROM_DOCS, SearchOptions, build_body, chosen_two_phase

RANK_FEATURES = RankFeatures(ClusterVersion("opensearch", "2.19.6"))
SPARSE_VECTOR = ElasticsearchSparseVector(ClusterVersion("elasticsearch", "8.19.21"))
TERMS = ElasticsearchSparseVector(ClusterVersion("elasticsearch", "8.11.4"))

VOCABULARY = TermVocabulary(en_pieces=("[PAD]", "berlin", "##ing", "e.g.", "capital"),
                            m_pieces=("<s>", "<pad>", "</s>", "▁Berlin", "首都"))
VECTOR = SparseVector(np.array([1, 4, 3], np.int32), np.array([2.0, 1.0, 0.5], np.float32),
                      np.array([3, 4], np.int32), np.array([1.5, 0.25], np.float32))


def clause_fields(query: dict) -> list[tuple[str, float]]:
    return [(c["rank_feature"]["field"], c["rank_feature"]["boost"]) for c in query["bool"]["should"]]


def test_terms_are_heaviest_first_with_escaped_keys() -> None:
    terms = dsl.query_terms(VECTOR, VOCABULARY)
    assert [(t.field, t.key, t.weight) for t in terms] == [
        ("milco_en", "berlin", 2.0), ("milco_m", "▁Berlin", 1.5), ("milco_en", "capital", 1.0),
        ("milco_en", "e%2Eg%2E", 0.5), ("milco_m", "首都", 0.25)]
    assert [t.name for t in terms][:2] == ["e_berlin", "m_▁Berlin"]


def test_exact_query_is_linear_rank_features_with_query_weights() -> None:
    query = dsl.sparse_query(dsl.query_terms(VECTOR, VOCABULARY), RANK_FEATURES)
    assert clause_fields(query)[0] == ("milco_en.berlin", 2.0)
    assert all(c["rank_feature"]["linear"] == {} for c in query["bool"]["should"])
    assert ("milco_en.e%2Eg%2E", 0.5) in clause_fields(query)


def test_echo_off_and_echo_weight() -> None:
    assert all(t.field == "milco_en" for t in dsl.query_terms(VECTOR, VOCABULARY, echo=False))
    weighted = {t.key: t.weight for t in dsl.query_terms(VECTOR, VOCABULARY, echo_weight=0.5)}
    assert weighted["▁Berlin"] == 0.75 and weighted["berlin"] == 2.0
    with pytest.raises(ValueError):
        dsl.query_terms(VECTOR, VOCABULARY, echo_weight=-1)


def test_clause_cap_keeps_the_heaviest_terms() -> None:
    query = dsl.sparse_query(dsl.query_terms(VECTOR, VOCABULARY), RANK_FEATURES, max_clauses=2)
    assert clause_fields(query) == [("milco_en.berlin", 2.0), ("milco_m.▁Berlin", 1.5)]
    assert dsl.sparse_query([], RANK_FEATURES) == {"match_none": {}}


def test_two_phase_splits_head_and_tail() -> None:
    body = dsl.two_phase_body(dsl.query_terms(VECTOR, VOCABULARY), RANK_FEATURES, size=10, first_phase_terms=2, window=50)
    assert len(body["query"]["bool"]["should"]) == 2
    rescore = body["rescore"]
    assert rescore["window_size"] == 50 and rescore["query"]["score_mode"] == "total"
    assert len(rescore["query"]["rescore_query"]["bool"]["should"]) == 3


def test_passages_filters_hybrid_and_paging() -> None:
    terms = dsl.query_terms(VECTOR, VOCABULARY)
    nested = dsl.passages_query(terms, RANK_FEATURES)["nested"]
    assert nested["score_mode"] == "max" and nested["path"] == "milco_passages"
    assert clause_fields(nested["query"])[0][0] == "milco_passages.milco_en.berlin"
    options = SearchOptions(size=5, from_=10, fusion="sum", bm25_weight=0.3, source=["title"],
                            filters=({"term": {"lang": "de"}},))
    body = build_body("Berlin", terms, options, RANK_FEATURES)
    assert body["size"] == 5 and body["from"] == 10 and body["_source"] == ["title"]
    assert body["query"]["bool"]["filter"] == [{"term": {"lang": "de"}}]
    hybrid = body["query"]["bool"]["must"][0]["bool"]["should"]
    assert hybrid[1] == {"multi_match": {"query": "Berlin", "fields": ["text"], "boost": 0.3}}


def test_sparse_vector_style_sends_one_query_vector_per_view() -> None:
    query = dsl.sparse_query(dsl.query_terms(VECTOR, VOCABULARY), SPARSE_VECTOR)
    clauses = {c["sparse_vector"]["field"]: c["sparse_vector"]["query_vector"] for c in query["bool"]["should"]}
    assert clauses == {"milco_en": {"berlin": 2.0, "capital": 1.0, "e%2Eg%2E": 0.5},
                       "milco_m": {"▁Berlin": 1.5, "首都": 0.25}}
    assert all("prune" not in c["sparse_vector"] for c in query["bool"]["should"])


PRUNING = {"sparse_vector": SparseVectorPruning(5.0, 0.4)}
CONFIG = {"tokens_freq_ratio_threshold": 5.0, "tokens_weight_threshold": 0.4, "only_score_pruned_tokens": False}


def test_sparse_vector_pruning_only_when_asked() -> None:
    config = CONFIG
    query = dsl.passages_query(dsl.query_terms(VECTOR, VOCABULARY), SPARSE_VECTOR.searching(PRUNING))
    clauses = query["nested"]["query"]["bool"]["should"]
    assert {c["sparse_vector"]["field"] for c in clauses} == {"milco_passages.milco_en", "milco_passages.milco_m"}
    assert all(c["sparse_vector"]["prune"] is True and c["sparse_vector"]["pruning_config"] == config
               for c in clauses)


def test_term_style_boosts_each_term_by_its_query_weight() -> None:
    query = dsl.sparse_query(dsl.query_terms(VECTOR, VOCABULARY), TERMS, max_clauses=2)
    assert query["bool"]["should"] == [{"term": {"milco_en": {"value": "berlin", "boost": 2.0}}},
                                       {"term": {"milco_m": {"value": "▁Berlin", "boost": 1.5}}}]
    with pytest.raises(ValueError, match="8.15"):
        TERMS.searching(PRUNING)


def test_another_field_types_search_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="--sparse-vector-pruning: sparse_vector search parameters, not for a "
                                         "rank_features index"):
        build_body("x", dsl.query_terms(VECTOR, VOCABULARY), SearchOptions(field_parameters=PRUNING), RANK_FEATURES)
    with pytest.raises(ValueError, match="--seismic-k"):
        SPARSE_VECTOR.searching({"seismic": SeismicSearch(k=5)})


def test_two_phase_keeps_the_pruning_config_in_both_phases_and_refuses_passages() -> None:
    body = build_body("Berlin", dsl.query_terms(VECTOR, VOCABULARY),
                      SearchOptions(two_phase=True, first_phase_terms=2, field_parameters=PRUNING), SPARSE_VECTOR)
    phases = [body["query"], body["rescore"]["query"]["rescore_query"]]
    assert all(c["sparse_vector"]["pruning_config"] == CONFIG for q in phases for c in q["bool"]["should"])
    with pytest.raises(ValueError, match="cannot be combined"):
        SearchOptions(two_phase=True, passages=True)


def test_explain_asks_for_the_vectors_the_field_type_may_leave_out_of_source() -> None:
    terms = dsl.query_terms(VECTOR, VOCABULARY)
    es_9 = ElasticsearchSparseVector(ClusterVersion("elasticsearch", "9.2.4"))
    assert build_body("x", terms, SearchOptions(explain=True), es_9)["_source"] == {"exclude_vectors": False}
    assert build_body("x", terms, SearchOptions(explain=True), RANK_FEATURES)["_source"] is True
    assert build_body("x", terms, SearchOptions(source=["title"]), es_9)["_source"] == ["title"]


def test_neural_sparse_tokens_carry_each_views_terms_with_their_weights() -> None:
    terms = dsl.query_terms(VECTOR, VOCABULARY, echo_weight=0.5)
    body = build_body("berlin", terms, SearchOptions(query_style="neural_sparse"), RANK_FEATURES)
    clauses = body["query"]["bool"]["should"]
    assert clauses == [
        {"neural_sparse": {"milco_en": {"query_tokens": {"berlin": 2.0, "capital": 1.0, "e%2Eg%2E": 0.5}}}},
        {"neural_sparse": {"milco_m": {"query_tokens": {"▁Berlin": 0.75, "首都": 0.125}}}}]
    nested = build_body("berlin", terms, SearchOptions(query_style="neural_sparse", passages=True), RANK_FEATURES)
    assert "milco_passages.milco_en" in nested["query"]["nested"]["query"]["bool"]["should"][0]["neural_sparse"]


@pytest.mark.parametrize("echo, echo_weight, views", [(True, 1.0, ["milco_en", "milco_m"]),
                                                      (False, 1.0, ["milco_en"]), (True, 0.0, ["milco_en"])])
def test_the_cluster_encodes_query_text_with_one_remote_model_per_view(echo: bool, echo_weight: float,
                                                                       views: list[str]) -> None:
    options = SearchOptions(query_style="neural_sparse", cluster_models={"en": "E", "m": "M"}, echo=echo,
                            echo_weight=echo_weight)
    clauses = build_body("Hauptstadt", [], options, RANK_FEATURES)["query"]["bool"]["should"]
    assert [next(iter(clause["neural_sparse"])) for clause in clauses] == views
    assert clauses[0]["neural_sparse"]["milco_en"] == {"query_text": "Hauptstadt", "model_id": "E"}


@pytest.mark.parametrize("options, message", [
    ({"query_style": "dense"}, "query style must be one of"),
    ({"query_style": "neural_sparse", "two_phase": True}, "run two-phase in the cluster"),
    ({"cluster_models": {"en": "E", "m": "M"}}, "only in the neural_sparse query style"),
    ({"query_style": "neural_sparse", "cluster_models": {"en": "E", "m": "M"}, "passages": True}, "passage scoring"),
    ({"query_style": "neural_sparse", "cluster_models": {"en": "E"}}, "maps each view"),
])
def test_search_options_refuse_what_neural_sparse_cannot_do(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchOptions(**options)


@dataclass
class SizedIndex:
    """What the two-phase choice reads of an index: its vector field and its size class."""

    field: object
    document_count: int


def test_large_indices_search_in_two_phases_unless_told_or_unable() -> None:
    from milco_os.commands.search import search
    from milco_os.index.vector_fields import Seismic

    small, large = SizedIndex(RANK_FEATURES, TWO_PHASE_FROM_DOCS - 1), SizedIndex(RANK_FEATURES, TWO_PHASE_FROM_DOCS)
    assert not chosen_two_phase(small, SearchOptions()) and chosen_two_phase(large, SearchOptions())
    assert chosen_two_phase(small, SearchOptions(two_phase=True))
    assert not chosen_two_phase(large, SearchOptions(two_phase=False))
    for cannot in (SearchOptions(passages=True), SearchOptions(query_style="neural_sparse")):
        assert not chosen_two_phase(large, cannot)
    seismic = Seismic(ClusterVersion("opensearch", "3.6.0"))
    assert not chosen_two_phase(SizedIndex(seismic, 10 * TWO_PHASE_FROM_DOCS), SearchOptions())
    # build_body without a choice made scores exactly.
    assert "rescore" not in build_body("x", dsl.query_terms(VECTOR, VOCABULARY), SearchOptions(), RANK_FEATURES)
    helps = [param.help for param in search.params if isinstance(param, click.Option)]
    assert any(f"two-phase on indices of {TWO_PHASE_FROM_DOCS:,} documents" in (text or "") for text in helps)


def test_the_two_phase_flags_reach_the_search_options() -> None:
    from milco_os.commands.options import search_options

    given = {}

    @click.command()
    @search_options
    def probe(search_flags) -> None:
        given["flags"] = search_flags

    result = CliRunner().invoke(probe, ["--two-phase", "--first-phase-terms", "8", "--window", "500",
                                        "--seismic-k", "50", "--no-echo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    options = given["flags"].build(None, 10)
    assert (options.two_phase, options.first_phase_terms, options.window, options.echo) == (True, 8, 500, False)
    assert options.field_parameters == {"seismic": SeismicSearch(k=50)}
    body = build_body("x", dsl.query_terms(VECTOR, VOCABULARY), replace(options, first_phase_terms=1, field_parameters={}),
                      RANK_FEATURES)
    assert body["rescore"]["window_size"] == 500
