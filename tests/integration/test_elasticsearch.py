"""Elasticsearch as a backend, against real nodes: 7.17 with rank_features, 8.x with sparse_vector.

The same fidelity check as on OpenSearch (top-10 equals the exact dot-product top-10,
with and without LexEcho terms), a sliced point-in-time reindex, and bad input through
the CLI with the engine detected from the cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import elasticsearch
import pytest
from elasticsearch import Elasticsearch, helpers

from milco_os.cluster import make_client
from milco_os.engines import engine_for
from milco_os.index.fields import vector_fields
from milco_os.index.setup import ensure_index
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import DictSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.encoding.pruning import PruneSpec
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.pipeline.reindex import ReindexPlan, Reindexer
from milco_os.search.searcher import SearchOptions, search, search_result
from tests.commands import run_cli
from tests.integration.test_hybrid import assert_same_ranking
from tests.integration.test_sparse_index import DOC_PRUNE, assert_top10_is_exact, corpus, exact_dot, queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def es(elasticsearch_target) -> Elasticsearch:
    url, _ = elasticsearch_target
    client = make_client(url)
    assert isinstance(client, Elasticsearch), "auto-detection must pick the elasticsearch client"
    return client


@pytest.fixture(scope="module")
def indexed(es: Elasticsearch, elasticsearch_target, tiny_encoder: MilcoEncoder) -> tuple[str, dict]:
    _, vector_type = elasticsearch_target
    index = f"fidelity-{vector_type.replace('_', '-')}"
    ensure_index(es, index, shards=1, replicas=0, vector_type=vector_type)
    documents = corpus()
    options = IngestOptions(prune=PruneSpec.parse(DOC_PRUNE), batch_size=50)
    summary = Ingestor(open_index(es, index), tiny_encoder, options, DeadLetters(None)).run(DictSource(documents))
    es.indices.refresh(index=index)
    assert summary.written == len(documents) and summary.failed == 0
    vectors = tiny_encoder.encode([doc["text"] for doc in documents], prune=DOC_PRUNE)
    return index, {doc["id"]: vector for doc, vector in zip(documents, vectors)}


def test_the_index_records_its_vector_field_type(es: Elasticsearch, elasticsearch_target, indexed) -> None:
    index, _ = indexed
    _, vector_type = elasticsearch_target
    properties = es.indices.get_mapping(index=index).body[index]["mappings"]["properties"]
    assert properties["milco_en"]["type"] == properties["milco_m"]["type"] == vector_type
    assert open_index(es, index).field.type_name == vector_type
    assert engine_for(es).version.engine == "elasticsearch"


def test_an_index_that_exists_already_is_told_apart_from_a_refused_body(es: Elasticsearch) -> None:
    engine, body = engine_for(es), {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}
    index = "created-twice"
    assert engine.create_index_unless_exists(index, body) is True
    try:
        assert engine.create_index_unless_exists(index, body) is False
        with pytest.raises(elasticsearch.BadRequestError, match="unknown setting"):
            engine.create_index_unless_exists(f"{index}-other", {"settings": {"index.no_such_setting": 1}})
    finally:
        es.indices.delete(index=index)


@pytest.mark.parametrize("echo", [True, False])
def test_top10_equals_exact_dot_product(es: Elasticsearch, tiny_encoder: MilcoEncoder, indexed, echo: bool) -> None:
    index, doc_vectors = indexed
    for text in queries():
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        exact = sorted(((exact_dot(query_vector, v, echo), doc_id) for doc_id, v in doc_vectors.items()), reverse=True)
        hits = search(open_index(es, index), tiny_encoder, text, SearchOptions(size=10, echo=echo))
        assert_top10_is_exact(hits, exact, doc_vectors, query_vector, echo)


@pytest.mark.parametrize("settings", [dict(fusion="rrf"), dict(fusion="min_max", bm25_weight=0.3),
                                      dict(fusion="l2", bm25_weight=0.6)], ids=lambda s: s["fusion"])
def test_hybrid_ranks_as_the_client_side_fusion(es: Elasticsearch, tiny_encoder: MilcoEncoder, indexed,
                                                settings: dict) -> None:
    """The rrf or linear retriever where the node has it (its version, licence and the rank-rrf module), else the
    same fusion here by Elasticsearch's definitions, with the reason stated."""
    handle = open_index(es, indexed[0])
    retriever = "rrf" if settings["fusion"] == "rrf" else "linear"
    for text in queries()[:4]:
        common = dict(settings, fusion_depth=30, source=False)
        auto = search_result(handle, tiny_encoder, text, SearchOptions(size=10, **common))
        here = search_result(handle, tiny_encoder, text, SearchOptions(size=30, fuse_in="client", **common))
        assert auto.fused_by.startswith((f"fused in the cluster: {retriever} retriever",
                                         f"fused here ({settings['fusion']}")), auto.fused_by
        if auto.fused_by.startswith("fused here"):
            reason = auto.fused_by.split("): ", 1)[1]
            assert f"[{retriever}]" in reason or "needs Elasticsearch" in reason or "licen" in reason, reason
        assert_same_ranking(auto, here)
    harmonic = search_result(handle, tiny_encoder, queries()[0], SearchOptions(
        fusion="min_max", combination="harmonic_mean", source=False))
    assert harmonic.fused_by.startswith("fused here") and "sums weighted scores" in harmonic.fused_by


def test_two_phase_scores_are_the_full_dot_product(es: Elasticsearch, tiny_encoder: MilcoEncoder, indexed) -> None:
    index, doc_vectors = indexed
    for text in queries()[:8]:
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        full = search(open_index(es, index), tiny_encoder, text, SearchOptions(size=10))
        whole = search(open_index(es, index), tiny_encoder, text,
                       SearchOptions(size=10, two_phase=True, first_phase_terms=16, window=len(doc_vectors)))
        assert [hit.id for hit in whole] == [hit.id for hit in full]
        assert [hit.score for hit in whole] == pytest.approx([hit.score for hit in full], rel=1e-5)
        assert all(hit.score == pytest.approx(exact_dot(query_vector, doc_vectors[hit.id], True), rel=1e-2)
                   for hit in whole)


def test_sliced_pit_reindex_keeps_ids_fields_and_exact_vectors(es: Elasticsearch, elasticsearch_target,
                                                                tiny_encoder: MilcoEncoder, tmp_path: Path) -> None:
    _, vector_type = elasticsearch_target
    source, dest = "reindex-src", "reindex-dst"
    originals = {f"r{n}": {"body": text["text"], "title": f"title {n}"} for n, text in enumerate(corpus(400, seed=9))}
    es.indices.create(index=source, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0},
                                          "mappings": {"properties": {"title": {"type": "keyword"}}}})
    helpers.bulk(es, ({"_index": source, "_id": doc_id, "_source": doc} for doc_id, doc in originals.items()),
                 refresh=True)
    options = IngestOptions(text_field="body", batch_size=64, prune=PruneSpec.parse(DOC_PRUNE))
    plan = ReindexPlan(source, dest, options, slices=2, vector_type=vector_type)
    checkpoint = SliceCheckpoint.load_or_new(tmp_path / "c.json", source, dest, 2, False)
    summary = Reindexer(es, tiny_encoder, plan, checkpoint, DeadLetters(None)).run()

    assert (summary.read, summary.written, summary.failed) == (len(originals), len(originals), 0)
    es.indices.refresh(index=dest)
    copies = {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=dest)}
    assert copies.keys() == originals.keys()
    expected = tiny_encoder.encode([originals[i]["body"] for i in sorted(originals)], prune=DOC_PRUNE)
    for doc_id, vector in zip(sorted(originals), expected):
        assert {k: copies[doc_id][k] for k in originals[doc_id]} == originals[doc_id]
        for field, terms in vector_fields(vector, tiny_encoder.vocabulary).items():
            assert copies[doc_id][field].keys() == terms.keys()
            assert all(abs(copies[doc_id][field][k] - w) <= 1e-5 for k, w in terms.items())


def test_bad_input_through_the_cli_with_the_engine_detected(elasticsearch_target, tiny_checkpoint: Path,
                                                             tmp_path: Path, es: Elasticsearch) -> None:
    url, vector_type = elasticsearch_target
    source = tmp_path / "docs.jsonl"
    source.write_bytes(b'{"id": "good-1", "text": "Berlin ist die Hauptstadt"}\n'
                       b'{"id": "broken", "text": \n'
                       b'{"id": "number", "text": 42}\n'
                       + '{"id": "latin1", "text": "café"}\n'.encode("latin-1")
                       + b'{"id": "good-2", "text": "Paris est la capitale"}\n')
    dead = tmp_path / "dead.jsonl"
    result = run_cli("ingest", "--url", url, "--index", "bad-input", "--vector-field", vector_type, "--model",
                     str(tiny_checkpoint), "--dead-letter", str(dead), str(source), timeout=300)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    entries = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert sorted((e["line"], e["id"], e["field"]) for e in entries) == [(2, None, None), (3, "number", "text"),
                                                                         (4, None, None)]
    es.indices.refresh(index="bad-input")
    stored = {hit["_id"] for hit in helpers.scan(es, index="bad-input")}
    assert stored == {"good-1", "good-2"}


def test_enrich_in_place_and_passages(es: Elasticsearch, elasticsearch_target, tiny_encoder: MilcoEncoder,
                                      tmp_path: Path) -> None:
    _, vector_type = elasticsearch_target
    index = "enrich-in-place"
    originals = {f"e{n}": {"body": doc["text"]} for n, doc in enumerate(corpus(60, seed=11))}
    helpers.bulk(es, ({"_index": index, "_id": doc_id, "_source": doc} for doc_id, doc in originals.items()),
                 refresh=True)
    options = IngestOptions(text_field="body", batch_size=16)
    plan = ReindexPlan(index, index, options, vector_type=vector_type, in_place=True)
    checkpoint = SliceCheckpoint.load_or_new(tmp_path / "c.json", index, index, 1, False)
    summary = Reindexer(es, tiny_encoder, plan, checkpoint, DeadLetters(None)).run()
    assert (summary.written, summary.conflicts, summary.failed) == (len(originals), 0, 0)
    es.indices.refresh(index=index)
    enriched = {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=index)}
    assert all(doc["body"] == originals[doc_id]["body"] for doc_id, doc in enriched.items())
    assert open_index(es, index).field.type_name == vector_type
    # The vectors are checked through search (9.x keeps sparse_vector values out of _source by default).
    doc_vectors = dict(zip(originals, tiny_encoder.encode([doc["body"] for doc in originals.values()])))
    for text in queries()[:6]:
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        for hit in search(open_index(es, index), tiny_encoder, text, SearchOptions(size=5)):
            assert hit.score == pytest.approx(query_vector.dot(doc_vectors[hit.id]), rel=1e-2)
    explained = search(open_index(es, index), tiny_encoder, "Berlin capital", SearchOptions(size=3, explain=True))
    assert explained and all(hit.terms and sum(hit.terms.values()) == pytest.approx(hit.score, rel=1e-2)
                             for hit in explained)

    passages = "passages-index"
    ensure_index(es, passages, passages=True, replicas=0, vector_type=vector_type)
    long_texts = [{"id": f"p{n}", "text": " ".join(doc["text"] for doc in corpus(12, seed=n))} for n in range(12)]
    written = Ingestor(open_index(es, passages), tiny_encoder, IngestOptions(passages=True, passage_tokens=24),
                       DeadLetters(None)).run(DictSource(long_texts))
    assert written.written == len(long_texts)
    es.indices.refresh(index=passages)
    hits = search(open_index(es, passages), tiny_encoder, "Berlin Hauptstadt", SearchOptions(size=5, passages=True))
    assert hits and all(hit.score > 0 for hit in hits)
    stored = es.get(index=passages, id=hits[0].id).body["_source"]["milco_passages"]
    assert len(stored) > 1, "long texts are split into several passages"
    query_vector = tiny_encoder.encode(["Berlin Hauptstadt"], max_length=64)[0]
    best = max(query_vector.dot(vector) for vector in tiny_encoder.encode([p["text"] for p in stored],
                                                                          max_length=24))
    assert hits[0].score == pytest.approx(best, rel=1e-2)
