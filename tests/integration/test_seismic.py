"""SEISMIC ``sparse_vector`` indices on a real OpenSearch 3.6.0 node with neural-search.

The ground truth is the exact dot product of the in-process encoder's vectors. SEISMIC
stores English weights as bytes, so scores may differ from it by the quantisation error, and
documents whose exact scores lie within that error of each other may swap places. LexEcho is
a rank_features field keyed by piece: ids from 32,768 up, where neural-search 3.6 folds SEISMIC
keys into 16 bits, must neither fail nor collide. The model is a tiny random checkpoint whose English view is calibrated to a
trained model's sparsity (random weights alone give nearly every piece a weight).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.index.fields import EN_FIELD, EN_VIEW, M_FIELD, M_VIEW
from milco_os.index.handle import open_index
from milco_os.index.seismic_keys import EnglishIdKeys
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.setup import ensure_index
from milco_os.index.seismic_parameters import SeismicIndex, SeismicSearch, n_postings_for
from milco_os.model import MilcoEncoder
from milco_os.model.tiny import make_tiny_checkpoint
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.errors import ReindexError
from milco_os.pipeline.reindex import ReindexPlan, Reindexer
from milco_os.pipeline.sources import DictSource
from milco_os.sample_corpus import sample_dir
from milco_os.search.query_dsl import QueryTerm
from milco_os.search.searcher import SearchOptions, build_body, search
from milco_os.services.search_node import SearchNode
from tests.commands import run_cli

pytestmark = pytest.mark.integration

PRUNE = "topk:64"
APPROXIMATE = SeismicIndex(approximate_threshold=100)  # the 600-document sample corpus is searched approximately
FULL_RECALL = SeismicSearch(k=1000, top_n=1000, heap_factor=1000.0)
NEAR_TIE = 0.01  # exact scores this close to the 10th may swap with it under byte quantisation


@pytest.fixture(scope="module")
def sparse_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("sparse-milco"), seed=7, en_terms_per_text=100)


@pytest.fixture(scope="module")
def encoder(sparse_checkpoint: Path) -> MilcoEncoder:
    return MilcoEncoder.from_pretrained(sparse_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def node(shared_ml_node: SearchNode) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[shared_ml_node.url], timeout=120)
    yield client
    client.close()


def corpus() -> list[dict]:
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [{"id": doc["_id"], "text": doc["text"], "lang": doc["lang"]} for doc in map(json.loads, lines)]


def queries(count: int = 40) -> list[str]:
    lines = (sample_dir() / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::len(lines) // count]][:count]


def ingest(client: OpenSearch, index: str, encoder: MilcoEncoder, documents: list[dict], **setup) -> Ingestor:
    handle, _ = ensure_index(client, index, replicas=0, **setup)
    ingestor = Ingestor(handle, encoder, IngestOptions(prune=PRUNE, batch_size=100), DeadLetters(None))
    summary = ingestor.run(DictSource(documents))
    assert summary.written == len(documents), summary
    client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.refresh(index=index)
    return ingestor


def exact_ranking(encoder: MilcoEncoder, text: str, vectors: dict[str, SparseVector]) -> list[tuple[str, float]]:
    query = encoder.encode_queries([text], max_length=SearchOptions.query_max_length)[0]
    scores = {doc_id: query.dot(vector) for doc_id, vector in vectors.items()}
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


@pytest.fixture(scope="module")
def doc_vectors(encoder: MilcoEncoder) -> dict[str, SparseVector]:
    documents = corpus()
    vectors = encoder.encode_documents([doc["text"] for doc in documents], prune=PRUNE)
    return {doc["id"]: vector for doc, vector in zip(documents, vectors)}


@pytest.fixture(scope="module")
def measured(encoder: MilcoEncoder) -> SeismicIndex:
    """Ceilings from the encoder's weights on the corpus, as setup measures them."""
    return measured_ceilings(encoder, [doc["text"] for doc in corpus()], APPROXIMATE, PRUNE)


@pytest.fixture(scope="module")
def indices(node: OpenSearch, encoder: MilcoEncoder, measured: SeismicIndex) -> dict[str, str]:
    """The sample corpus three times: rank_features, SEISMIC below its threshold, and SEISMIC above it."""
    documents = corpus()
    ingest(node, "plain", encoder, documents)
    ingest(node, "exact-seismic", encoder, documents, vector_type="seismic",
           parameters=replace(measured, approximate_threshold=SeismicIndex.approximate_threshold))
    ingest(node, "ann-seismic", encoder, documents, vector_type="seismic", parameters=measured)
    return {"plain": "plain", "exact": "exact-seismic", "ann": "ann-seismic"}


def test_the_mapping_keys_english_by_id_and_lexecho_by_piece(node: OpenSearch, indices: dict[str, str],
                                                              measured: SeismicIndex) -> None:
    index = indices["ann"]
    mapping = node.indices.get_mapping(index=index)[index]["mappings"]
    vector_types = {name: spec["type"] for name, spec in mapping["properties"].items()
                    if name.startswith("milco_") and "type" in spec}
    assert vector_types == {EN_FIELD: "sparse_vector", M_FIELD: "rank_features"}
    assert mapping["properties"][EN_FIELD]["method"]["parameters"]["approximate_threshold"] == 100
    assert node.indices.get_settings(index=index)[index]["settings"]["index"]["sparse"] == "true"
    source = node.get(index=index, id=corpus()[0]["id"])["_source"]
    assert all(0 <= int(key) < 32_768 for key in source[EN_FIELD])
    plain = node.get(index=indices["plain"], id=corpus()[0]["id"])["_source"]
    assert source[M_FIELD] == plain[M_FIELD]
    assert open_index(node, index).field.index == measured


def test_below_the_threshold_scores_are_the_exact_dot_product(node: OpenSearch, indices: dict[str, str],
                                                              encoder: MilcoEncoder,
                                                              doc_vectors: dict[str, SparseVector]) -> None:
    handle = open_index(node, indices["exact"])
    for text in queries(8):
        exact = dict(exact_ranking(encoder, text, doc_vectors))
        hits = search(handle, encoder, text, SearchOptions(size=10))
        assert len(hits) == 10
        for hit in hits:
            # rank_feature's 9 significant bits per stored weight
            assert hit.score == pytest.approx(exact[hit.id], rel=5e-3), (text, hit.id)


def exact_english_ranking(encoder: MilcoEncoder, text: str, vectors: dict[str, SparseVector]) -> list[str]:
    query = encoder.encode_queries([text], max_length=SearchOptions.query_max_length, echo=False)[0]
    return sorted(vectors, key=lambda doc_id: (-query.dot(vectors[doc_id]), doc_id))


def test_above_the_threshold_the_english_first_phase_finds_the_exact_english_top_10(
        node: OpenSearch, indices: dict[str, str], encoder: MilcoEncoder,
        doc_vectors: dict[str, SparseVector]) -> None:
    handle = open_index(node, indices["ann"])
    segments = node.indices.segments(index=indices["ann"])["indices"][indices["ann"]]["shards"]["0"][0]["segments"]
    assert [segment["num_docs"] for segment in segments.values()] == [len(doc_vectors)]  # one segment, approximate
    found = 0
    for text in queries():
        top = set(exact_english_ranking(encoder, text, doc_vectors)[:10])
        found += len(top & {hit.id for hit in search(handle, encoder, text, SearchOptions(size=10, echo=False))})
    assert found / (10 * len(queries())) >= 0.95


def test_above_the_threshold_the_first_phase_candidates_get_their_exact_two_view_scores(
        node: OpenSearch, indices: dict[str, str], encoder: MilcoEncoder,
        doc_vectors: dict[str, SparseVector]) -> None:
    """The hits are the exact two-view top 10 of the English first phase's candidates, with exact scores (a
    random checkpoint puts most of its weight in LexEcho, which a trained one does not: recall against the
    whole collection's two-view top 10 is measured on MILCO-like vectors in bench/seismic_sweep.py)."""
    handle = open_index(node, indices["ann"])
    window = SeismicSearch.k
    for text in queries():
        candidates = [hit.id for hit in search(handle, encoder, text, SearchOptions(size=window, echo=False))]
        scores = dict(exact_ranking(encoder, text, {doc_id: doc_vectors[doc_id] for doc_id in candidates}))
        expected = sorted(scores, key=lambda doc_id: -scores[doc_id])[:10]
        hits = search(handle, encoder, text, SearchOptions(size=10))
        tenth = scores[expected[-1]]
        assert all(abs(scores.get(doc_id, 0.0) - tenth) <= NEAR_TIE * tenth
                   for doc_id in {hit.id for hit in hits} ^ set(expected)), text
        full = dict(exact_ranking(encoder, text, doc_vectors))
        for hit in hits:  # every returned score is the full dot product, to the byte quantisation
            if not handle.field.clipped(doc_vectors[hit.id]):
                assert hit.score == pytest.approx(full[hit.id], rel=0.02), (text, hit.id)


def test_at_full_recall_settings_seismic_and_rank_features_give_the_same_top_10(
        node: OpenSearch, indices: dict[str, str], encoder: MilcoEncoder,
        doc_vectors: dict[str, SparseVector]) -> None:
    plain, ann = open_index(node, indices["plain"]), open_index(node, indices["ann"])
    same = 0
    for text in queries():
        scores = dict(exact_ranking(encoder, text, doc_vectors))
        expected = {hit.id for hit in search(plain, encoder, text, SearchOptions(size=10))}
        got = {hit.id for hit in search(ann, encoder, text, SearchOptions(size=10, field_parameters={"seismic": FULL_RECALL}))}
        tenth = sorted(scores.values(), reverse=True)[9]
        assert all(abs(scores[doc_id] - tenth) <= NEAR_TIE * tenth for doc_id in got ^ expected), text
        same += got == expected
    assert same >= len(queries()) // 2  # 30 of 40 here: the rest differ only by near-ties


def test_explain_names_the_terms_behind_the_ids(node: OpenSearch, indices: dict[str, str],
                                                encoder: MilcoEncoder) -> None:
    text = queries(1)[0]
    plain = search(open_index(node, indices["plain"]), encoder, text, SearchOptions(size=3, explain=True))
    # every document a candidate, so the rescore window holds the exact top 3
    ann = search(open_index(node, indices["exact"]), encoder, text,
                 SearchOptions(size=3, explain=True, field_parameters={"seismic": FULL_RECALL}))
    assert [hit.id for hit in ann] == [hit.id for hit in plain]
    for seismic_hit, plain_hit in zip(ann, plain):
        assert seismic_hit.terms.keys() == plain_hit.terms.keys()
        assert any(name.startswith("m_") for name in seismic_hit.terms)
        for name, value in plain_hit.terms.items():
            assert seismic_hit.terms[name] == pytest.approx(value, rel=1e-5)


def test_a_filter_narrows_the_candidates_not_the_hits(node: OpenSearch, indices: dict[str, str],
                                                      encoder: MilcoEncoder,
                                                      doc_vectors: dict[str, SparseVector]) -> None:
    japanese = {doc["id"] for doc in corpus() if doc["lang"] == "ja"}
    handle = open_index(node, indices["ann"])
    found = 0
    for text in queries(10):
        exact = [doc_id for doc_id, _ in exact_ranking(encoder, text, doc_vectors) if doc_id in japanese][:10]
        hits = search(handle, encoder, text, SearchOptions(size=10, filters=({"term": {"lang": "ja"}},)))
        assert len(hits) == 10 and {hit.id for hit in hits} <= japanese
        found += len(set(exact) & {hit.id for hit in hits})
    assert found / 100 >= 0.95


def test_two_phase_is_refused_on_seismic(node: OpenSearch, indices: dict[str, str],
                                         encoder: MilcoEncoder) -> None:
    with pytest.raises(ValueError, match="two-phase"):
        search(open_index(node, indices["ann"]), encoder, "Berlin", SearchOptions(two_phase=True))


# --- multilingual ids across the 16-bit boundaries -----------------------------------------------------------

FILLER = 300
M_VOCABULARY = TermVocabulary(tuple(f"w{i}" for i in range(30_522)), tuple(f"p{i}" for i in range(250_002)))
KEYS = EnglishIdKeys()


def lexecho_vector(*ids_weights: tuple[int, float], english: int = 7) -> SparseVector:
    ids = np.array([i for i, _ in ids_weights], np.int32)
    weights = np.array([w for _, w in ids_weights], np.float32)
    return SparseVector(np.array([english], np.int32), np.array([0.1], np.float32), ids, weights)


def english_vector(term_id: int, weight: float) -> SparseVector:
    return SparseVector(np.array([term_id], np.int32), np.array([weight], np.float32), np.array([], np.int32),
                        np.array([], np.float32))


def lexecho_query(handle, *ids: int, english: tuple[int, ...] = ()) -> list[str]:
    terms = [QueryTerm(*KEYS.key(EN_VIEW, term_id, M_VOCABULARY), 0.5, M_VOCABULARY.en_name(term_id))
             for term_id in english]
    terms += [QueryTerm(*KEYS.key(M_VIEW, term_id, M_VOCABULARY), 1.0, M_VOCABULARY.m_name(term_id))
              for term_id in ids]
    body = build_body("", terms, SearchOptions(size=10), handle.field)
    return [hit["_id"] for hit in handle.client.search(index=handle.name, body=body)["hits"]["hits"]]


@pytest.fixture(scope="module")
def boundary_index(node: OpenSearch) -> str:
    """Documents holding LexEcho ids just below and above 32,768 and 65,536, beside filler, in one
    segment past the approximate threshold."""
    handle, _ = ensure_index(node, "boundaries", replicas=0, vector_type="seismic", parameters=APPROXIMATE)
    special = {"low": lexecho_vector((5, 2.0), english=11), "folded": lexecho_vector((65_541, 2.0), english=11),
               "middle": lexecho_vector((40_000, 2.0), english=11), "band-1": lexecho_vector((32_773, 2.0), english=11),
               "top": lexecho_vector((250_001, 2.0), english=11)}
    rng = np.random.default_rng(3)
    filler = {f"filler-{n}": lexecho_vector(*((int(i), 1.0) for i in rng.choice(np.arange(100, 3000), 5,
                                                                                   replace=False)))
              for n in range(FILLER)}
    actions = ({"_index": handle.name, "_id": doc_id, "_source": KEYS.document_fields(vector, M_VOCABULARY)}
               for doc_id, vector in {**special, **filler}.items())
    helpers.bulk(node, actions)
    node.indices.forcemerge(index=handle.name, max_num_segments=1)
    node.indices.refresh(index=handle.name)
    return handle.name


@pytest.mark.parametrize(("term_id", "expected"), [(5, "low"), (65_541, "folded"), (40_000, "middle"),
                                                   (32_773, "band-1"), (250_001, "top")])
def test_lexecho_ids_past_16_bits_neither_fail_nor_collide(node: OpenSearch, boundary_index: str, term_id: int,
                                                           expected: str) -> None:
    handle = open_index(node, boundary_index)
    assert lexecho_query(handle, term_id) == [expected]  # LexEcho alone: scored exactly, no first phase
    # An English first phase finds the five documents of English term 11; the rescore's LexEcho part ranks them.
    ranked = lexecho_query(handle, term_id, english=(11,))
    assert len(ranked) == 5 and ranked[0] == expected


def test_a_weight_above_the_ingest_ceiling_counts_as_the_ceiling_on_the_approximate_path(
        node: OpenSearch, encoder: MilcoEncoder) -> None:
    handle, _ = ensure_index(node, "ceilings", replicas=0, vector_type="seismic", parameters=APPROXIMATE)
    heavy, light = english_vector(9, 5.0), english_vector(9, 1.5)
    helpers.bulk(node, [{"_index": handle.name, "_id": doc_id, "_source": KEYS.document_fields(vector, M_VOCABULARY)}
                        for doc_id, vector in (("heavy", heavy), ("light", light),
                                               *((f"filler-{n}", english_vector(20 + n, 1.0)) for n in range(150)))])
    node.indices.forcemerge(index=handle.name, max_num_segments=1)
    node.indices.refresh(index=handle.name)
    terms = [QueryTerm(*KEYS.key(EN_VIEW, 9, M_VOCABULARY), 2.0, "e_w9")]
    hits = node.search(index=handle.name, body=build_body("", terms, SearchOptions(size=2), handle.field))
    scores = {hit["_id"]: hit["_score"] for hit in hits["hits"]["hits"]}
    assert scores["heavy"] == pytest.approx(2.0 * APPROXIMATE.ceilings.ingest, rel=0.01)
    assert scores["light"] == pytest.approx(2.0 * 1.5, rel=0.01)
    assert handle.field.clipped(heavy) and not handle.field.clipped(light)


@pytest.mark.parametrize("sparse", [False, True])
def test_enrich_in_place_needs_an_index_created_sparse(node: OpenSearch, encoder: MilcoEncoder, tmp_path: Path,
                                                       measured: SeismicIndex, sparse: bool) -> None:
    index = f"articles-{'sparse' if sparse else 'plain'}"
    node.indices.create(index=index, body={"settings": {"index": {"number_of_replicas": 0, "sparse": sparse}}})
    documents = corpus()[:40]
    helpers.bulk(node, ({"_index": index, "_id": doc["id"], "_source": {"body": doc["text"]}} for doc in documents),
                 refresh=True)
    plan = ReindexPlan(index, index, IngestOptions(text_field="body", prune=PRUNE), vector_type="seismic",
                       in_place=True, field_parameters=measured)
    checkpoint = SliceCheckpoint.load_or_new(tmp_path / "c.json", index, index, 1, False)
    reindexer = Reindexer(node, encoder, plan, checkpoint, DeadLetters(None))
    if not sparse:
        with pytest.raises(ReindexError, match="index.sparse: True, set only when an index is created"):
            reindexer.run()
        return
    assert reindexer.run().written == len(documents)
    stored = node.get(index=index, id=documents[0]["id"])["_source"]
    assert stored["body"] == documents[0]["text"] and set(stored) - {"body", "milco_meta"} == {EN_FIELD, M_FIELD}
    node.indices.refresh(index=index)
    assert search(open_index(node, index), encoder, documents[0]["text"], SearchOptions(size=1))[0].id == \
        documents[0]["id"]


def test_reindex_between_rank_features_and_seismic_both_ways(node: OpenSearch, indices: dict[str, str],
                                                            sparse_checkpoint: Path, encoder: MilcoEncoder,
                                                            tmp_path: Path) -> None:
    url = f"http://{node.transport.hosts[0]['host']}:{node.transport.hosts[0]['port']}"
    common = ("--url", url, "--model", str(sparse_checkpoint), "--text-field", "text", "--prune", PRUNE)
    to_seismic = run_cli("reindex", *common, "--source", indices["plain"], "--dest", "round-seismic",
                         "--vector-field", "seismic", "--dead-letter", str(tmp_path / "to-seismic.jsonl"))
    assert to_seismic.returncode == 0, to_seismic.stderr
    back = run_cli("reindex", *common, "--source", "round-seismic", "--dest", "round-plain",
                   "--vector-field", "rank_features", "--dead-letter", str(tmp_path / "back.jsonl"))
    assert back.returncode == 0, back.stderr
    seismic_mapping = node.indices.get_mapping(index="round-seismic")["round-seismic"]["mappings"]
    plain_mapping = node.indices.get_mapping(index="round-plain")["round-plain"]["mappings"]
    assert seismic_mapping["properties"][EN_FIELD]["type"] == "sparse_vector"
    assert plain_mapping["properties"][EN_FIELD]["type"] == "rank_features"
    vectors = encoder.encode_documents([doc["text"] for doc in corpus()], prune=PRUNE)
    largest = max(float(vector.en_weights.max()) for vector in vectors)
    # measured on a sample of the source: near the corpus' largest English weight, with headroom
    ceiling = seismic_mapping["properties"][EN_FIELD]["method"]["parameters"]["quantization_ceiling_ingest"]
    assert 0.75 * largest <= ceiling <= 1.5 * largest
    for doc_id in (doc["id"] for doc in corpus()[::97]):
        original = node.get(index=indices["plain"], id=doc_id)["_source"]
        returned = node.get(index="round-plain", id=doc_id)["_source"]
        assert returned["text"] == original["text"]
        for field in (EN_FIELD, M_FIELD):
            assert returned[field].keys() == original[field].keys()
            assert all(returned[field][key] == pytest.approx(weight, rel=1e-5)
                       for key, weight in original[field].items())
    text = queries(1)[0]
    assert [hit.id for hit in search(open_index(node, "round-seismic"), encoder, text, SearchOptions())] == \
        [hit.id for hit in search(open_index(node, indices["exact"]), encoder, text, SearchOptions())]


def test_the_commands_on_a_seismic_index(node: OpenSearch, sparse_checkpoint: Path, tmp_path: Path) -> None:
    """setup measures the ceilings on the shipped sample corpus; ingest counts and reports what they clip."""
    url = f"http://{node.transport.hosts[0]['host']}:{node.transport.hosts[0]['port']}"
    model = ("--model", str(sparse_checkpoint))
    unmeasured = run_cli("setup", "--url", url, "--index", "cli-seismic", "--vector-field", "seismic")
    assert unmeasured.returncode == 2 and "--quantization-ceilings" in unmeasured.stderr
    setup = run_cli("setup", "--url", url, "--index", "cli-seismic", "--vector-field", "seismic", *model,
                    "--approximate-threshold", "100", "--expected-documents", "3000000", "--replicas", "0")
    assert setup.returncode == 0, setup.stderr
    assert "index cli-seismic: created" in setup.stdout and "quantisation ceilings" in setup.stdout
    method = node.indices.get_mapping(index="cli-seismic")["cli-seismic"]["mappings"]["properties"][EN_FIELD]["method"]
    assert method["parameters"]["n_postings"] == n_postings_for(3_000_000) > SeismicIndex().n_postings
    ingest = run_cli("ingest", "--url", url, "--index", "cli-seismic", *model, "--prune", PRUNE, "--id-field", "_id",
                     "--dead-letter", str(tmp_path / "ingest.jsonl"), str(sample_dir() / "corpus.jsonl"))
    assert ingest.returncode == 0, ingest.stderr
    summary = json.loads(next(line for line in ingest.stderr.splitlines() if line.startswith("{")))
    assert summary["written"] == len(corpus()), ingest.stderr
    settings = node.indices.get_settings(index="cli-seismic", flat_settings=True)["cli-seismic"]["settings"]
    assert not {"index.refresh_interval", "index.merge.policy.max_merged_segment"} & set(settings)  # put back
    assert "loading" not in node.indices.get_mapping(index="cli-seismic")["cli-seismic"]["mappings"]["_meta"][
        "milco_os"]
    field = open_index(node, "cli-seismic").field
    encoder = MilcoEncoder.from_pretrained(sparse_checkpoint, device="cpu")
    clipped = sum(map(field.clipped, encoder.encode_documents([doc["text"] for doc in corpus()], prune=PRUNE)))
    assert summary.get("clipped", 0) == clipped
    assert (f"warning: {clipped} document(s) have English weights above" in ingest.stderr) == bool(clipped)
    found = run_cli("search", "--url", url, "--index", "cli-seismic", *model, "--format", "json", "--seismic-k", "50",
                    "--seismic-top-n", "8", "--explain", queries(1)[0])
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)["hits"]
    assert len(hits) == 10 and all(hit["terms"] for hit in hits)
    evaluated = run_cli("eval", "--url", url, "--index", "cli-seismic", *model, "--queries",
                        str(sample_dir() / "queries.jsonl"), "--qrels", str(sample_dir() / "qrels" / "test.tsv"))
    assert evaluated.returncode == 0, evaluated.stderr
    refused = run_cli("search", "--url", url, "--index", "cli-seismic", *model, "--two-phase", "Berlin")
    assert refused.returncode == 2 and "two-phase" in refused.stderr
