"""OpenSearch ranks exactly as the MILCO dot product: fidelity, two-phase, ingest semantics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.index.fields import stored_terms
from milco_os.index.setup import IncompatibleIndexError, ensure_index
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import DictSource, JsonlSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.encoding.pruning import PruneSpec
from milco_os.search.searcher import SearchOptions, search
from milco_os.encoding.sparse import SparseVector
from milco_os.model.tiny import MULTILINGUAL_SAMPLE

pytestmark = pytest.mark.integration

DOC_PRUNE = "topk:48"
CORPUS = Path(__file__).resolve().parents[1] / "data" / "small_corpus.jsonl"


def corpus(count: int = 320, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    sentences = list(MULTILINGUAL_SAMPLE) + [doc["text"] for doc in map(json.loads, CORPUS.read_text().splitlines())]
    return [{"id": f"d{n}", "text": " ".join(rng.sample(sentences, rng.randint(1, 3)))} for n in range(count)]


def queries(count: int = 32, seed: int = 4) -> list[str]:
    rng = random.Random(seed)
    picked = []
    for sentence in rng.sample(list(MULTILINGUAL_SAMPLE), min(count, len(MULTILINGUAL_SAMPLE))):
        words = sentence.split()
        start = rng.randrange(len(words))
        picked.append(" ".join(words[start : start + rng.randint(1, 3)]) or sentence[:6])
    while len(picked) < count:
        sentence = rng.choice(MULTILINGUAL_SAMPLE)
        picked.append(sentence[rng.randrange(len(sentence) // 2):][:8])
    return picked


def exact_dot(query: SparseVector, doc: SparseVector, echo: bool) -> float:
    if echo:
        return query.dot(doc)
    return SparseVector(query.en_ids, query.en_weights, query.m_ids[:0], query.m_weights[:0]).dot(doc)


@pytest.fixture(scope="module")
def indexed(opensearch: OpenSearch, tiny_encoder: MilcoEncoder, tmp_path_factory) -> tuple[str, dict]:
    index = "fidelity-" + tmp_path_factory.mktemp("x").name.lower()
    ensure_index(opensearch, index, shards=1, replicas=0)
    documents = corpus()
    options = IngestOptions(prune=PruneSpec.parse(DOC_PRUNE), batch_size=50)
    summary = Ingestor(open_index(opensearch, index), tiny_encoder, options, DeadLetters(None)).run(DictSource(documents))
    opensearch.indices.refresh(index=index)
    assert summary.written == len(documents) and summary.failed == 0
    vectors = tiny_encoder.encode([doc["text"] for doc in documents], prune=DOC_PRUNE)
    yield index, {doc["id"]: vector for doc, vector in zip(documents, vectors)}
    opensearch.indices.delete(index=index)


def assert_top10_is_exact(hits, exact: list[tuple[float, str]], doc_vectors, query_vector, echo: bool) -> None:
    assert len(hits) == min(10, sum(1 for score, _ in exact if score > 0))
    for rank, hit in enumerate(hits):
        true_score = exact_dot(query_vector, doc_vectors[hit.id], echo)
        assert hit.score == pytest.approx(true_score, rel=1e-2)
        # Ties and near-ties (within rank_features' 9-bit precision) may swap places, nothing more.
        assert true_score == pytest.approx(exact[rank][0], rel=1e-2)


def assert_same_ranking(hits, expected) -> None:
    """The same scores in the same order and the same documents, except which of the tied last scores made the cut.

    Shard copies hold documents in their own order, so two searches may break a tie at the cut-off differently.
    """
    assert [round(hit.score, 4) for hit in hits] == [round(hit.score, 4) for hit in expected]
    if not hits:
        return
    last = round(hits[-1].score, 4)
    assert ({hit.id for hit in hits if round(hit.score, 4) != last}
            == {hit.id for hit in expected if round(hit.score, 4) != last})


@pytest.mark.parametrize("echo", [True, False])
def test_top10_equals_exact_dot_product(opensearch: OpenSearch, tiny_encoder: MilcoEncoder, indexed, echo: bool):
    index, doc_vectors = indexed
    for text in queries():
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        exact = sorted(((exact_dot(query_vector, v, echo), doc_id) for doc_id, v in doc_vectors.items()), reverse=True)
        hits = search(open_index(opensearch, index), tiny_encoder, text, SearchOptions(size=10, echo=echo))
        assert_top10_is_exact(hits, exact, doc_vectors, query_vector, echo)


def test_two_phase_top10_equals_full_top10(opensearch: OpenSearch, tiny_encoder: MilcoEncoder, indexed) -> None:
    index, doc_vectors = indexed
    for text in queries()[:12]:
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        full = search(open_index(opensearch, index), tiny_encoder, text, SearchOptions(size=10))
        # A window over every candidate: two-phase must give exactly the full ranking.
        whole = search(open_index(opensearch, index), tiny_encoder, text,
                       SearchOptions(size=10, two_phase=True, first_phase_terms=16, window=len(doc_vectors)))
        assert_same_ranking(whole, full)
        # A smaller window may miss documents, but every score it returns is the full dot product.
        for hit in search(open_index(opensearch, index), tiny_encoder, text,
                          SearchOptions(size=10, two_phase=True, first_phase_terms=16, window=50)):
            assert hit.score == pytest.approx(exact_dot(query_vector, doc_vectors[hit.id], True), rel=1e-2)


def test_explain_names_the_matched_terms(opensearch: OpenSearch, tiny_encoder: MilcoEncoder, indexed) -> None:
    index, _ = indexed
    hit = search(open_index(opensearch, index), tiny_encoder, "Berlin capital", SearchOptions(size=1, explain=True))[0]
    assert hit.terms and all(name.startswith(("e_", "m_")) for name in hit.terms)
    assert sum(hit.terms.values()) == pytest.approx(hit.score, rel=1e-2)
    assert set(hit.terms) <= set(stored_terms(hit.source))


def test_setup_is_idempotent_and_refuses_incompatible_indices(opensearch: OpenSearch, index_name: str) -> None:
    assert ensure_index(opensearch, index_name, replicas=0)[1] == "created"
    handle, outcome = ensure_index(opensearch, index_name, replicas=0)
    assert outcome == "exists" and handle.name == index_name and handle.field.type_name == "rank_features"
    other = index_name + "-plain"
    opensearch.indices.create(index=other, body={"mappings": {"properties": {"milco_en": {"type": "keyword"}}}})
    try:
        with pytest.raises(IncompatibleIndexError, match="field 'milco_en' is keyword, milco-os needs rank_features"):
            ensure_index(opensearch, other)
    finally:
        opensearch.indices.delete(index=other)


def test_ingest_semantics_for_bad_and_odd_input(opensearch: OpenSearch, tiny_encoder: MilcoEncoder, index_name: str,
                                                tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "ok", "text": "Berlin ist die Hauptstadt", "lang": "de"}).encode(),
        json.dumps({"id": "blank", "text": "   "}).encode(),
        json.dumps({"id": "missing"}).encode(),
        json.dumps({"id": "list", "text": ["Москва", "столица"]}).encode(),
        json.dumps({"id": "number", "text": 42}).encode(),
        json.dumps({"id": "nested", "text": {"a": "b"}}).encode(),
        b'{"id": "broken", "text": ',
        b'{"id": "latin1", "text": "caf\xe9"}',
        json.dumps({"text": "no id here"}).encode(),
        json.dumps({"id": "ok", "text": "Berlin ist die Hauptstadt Deutschlands"}).encode(),
    ]
    source = tmp_path / "docs.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    ensure_index(opensearch, index_name, replicas=0)
    dead = tmp_path / "dead.jsonl"
    with dead.open("w") as stream:
        summary = Ingestor(open_index(opensearch, index_name), tiny_encoder, IngestOptions(batch_size=3),
                           DeadLetters(stream)).run(JsonlSource(source))
    opensearch.indices.refresh(index=index_name)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert {(entry["line"], entry["id"]) for entry in letters} == {(5, "number"), (6, "nested"), (7, None), (8, None)}
    reasons = {entry["line"]: entry["reason"] for entry in letters}
    assert "field 'text' is a int" in reasons[5] and "document number" in reasons[5]
    assert "not valid JSON" in reasons[7] and "not valid UTF-8" in reasons[8]
    assert (summary.read, summary.failed, summary.no_text, summary.duplicate_ids) == (10, 4, 2, 1)
    stored = {hit["_id"]: hit["_source"] for hit in opensearch.search(index=index_name, body={"size": 50})["hits"]["hits"]}
    assert len(stored) == 5
    assert stored["ok"]["text"].endswith("Deutschlands")  # the last duplicate wins
    assert "milco_en" not in stored["blank"] and "milco_en" not in stored["missing"]
    assert stored["list"]["milco_en"] and "lang" not in stored["ok"]
    generated = [doc_id for doc_id in stored if doc_id not in {"ok", "blank", "missing", "list"}]
    assert len(generated) == 1 and stored[generated[0]]["text"] == "no id here"

    again = Ingestor(open_index(opensearch, index_name), tiny_encoder, IngestOptions(), DeadLetters(None)).run(JsonlSource(source))
    opensearch.indices.refresh(index=index_name)
    assert again.failed == 4
    assert opensearch.count(index=index_name)["count"] == 5


def test_pipeline_stamps_encoded_at_and_refuses_bad_weights(opensearch: OpenSearch, index_name: str) -> None:
    from opensearchpy.exceptions import RequestError

    from milco_os.index.setup import ensure_pipelines

    created, _ = ensure_index(opensearch, index_name, replicas=0)
    assert ensure_pipelines(opensearch) == {"milco-stamp": "unchanged"}
    # milco-os's own writes are checked and stamped already: they skip the pipeline; other writers go through it.
    assert created.bulk_pipeline == "_none" == open_index(opensearch, index_name).bulk_pipeline
    opensearch.index(index=index_name, id="stamped", refresh=True,
                     body={"text": "x", "milco_en": {"berlin": 1.5}, "milco_meta": {"encoded_at": "2000-01-01T00:00:00Z"}})
    stamped = opensearch.get(index=index_name, id="stamped")["_source"]["milco_meta"]["encoded_at"]
    assert stamped > "2026" and stamped != "2000-01-01T00:00:00Z"
    for bad in ({"berlin": -1.0}, {"berlin": 0}, {"berlin": "heavy"}):
        with pytest.raises(RequestError) as refused:
            opensearch.index(index=index_name, id="bad", body={"text": "x", "milco_m": bad})
        assert "document [bad]: field [milco_m], term [berlin] must have a positive finite weight" in json.dumps(refused.value.info)
    assert not opensearch.exists(index=index_name, id="bad")
    opensearch.indices.put_settings(index=index_name, body={"index.default_pipeline": "_none"})
    assert open_index(opensearch, index_name).bulk_pipeline is None


def test_passages_variant_scores_the_best_passage(opensearch: OpenSearch, tiny_encoder: MilcoEncoder,
                                                  index_name: str) -> None:
    from milco_os.encoding.passages import split_passages

    ensure_index(opensearch, index_name, passages=True, replicas=0)
    documents = corpus(count=40, seed=9)
    options = IngestOptions(prune=PruneSpec.parse(DOC_PRUNE), passages=True, passage_tokens=24)
    summary = Ingestor(open_index(opensearch, index_name), tiny_encoder, options, DeadLetters(None)).run(DictSource(documents))
    opensearch.indices.refresh(index=index_name)
    assert summary.written == len(documents)
    best: dict[str, list[SparseVector]] = {}
    for doc in documents:
        texts = [p.text for p in split_passages(tiny_encoder.tokenizer, doc["text"], max_tokens=24)]
        best[doc["id"]] = tiny_encoder.encode(texts, max_length=24, prune=DOC_PRUNE)
    assert max(len(vectors) for vectors in best.values()) > 1
    for text in queries()[:8]:
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        hits = search(open_index(opensearch, index_name), tiny_encoder, text, SearchOptions(size=5, passages=True))
        assert hits
        for hit in hits:
            expected = max(query_vector.dot(vector) for vector in best[hit.id])
            assert hit.score == pytest.approx(expected, rel=1e-2)
