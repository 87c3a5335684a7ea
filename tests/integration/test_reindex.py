"""reindex and enrich against a real node: slices, resume after SIGKILL, skip-existing, alias, concurrency."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from pathlib import Path

import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.index.fields import vector_fields
from milco_os.pipeline.ingest import IngestOptions
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.encoding.contract import SparseEncoder
from milco_os.model import MilcoEncoder
from milco_os.encoding.pruning import PruneSpec
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.errors import ReindexError
from milco_os.pipeline.alias_swap import move_alias
from milco_os.pipeline.reindex import ReindexPlan, Reindexer
from milco_os.model.tiny import MULTILINGUAL_SAMPLE
from tests.commands import milco_os_command, run_cli
from tests.waiting import settled_count, wait_for

pytestmark = pytest.mark.integration

DOCS = 2000
PRUNE = "topk:24"


class CountingEncoder(SparseEncoder):
    """The tiny encoder, counting the texts it is asked to encode."""

    def __init__(self, encoder: MilcoEncoder, before_first_call=None) -> None:
        self.encoder, self.vocabulary, self.name = encoder, encoder.vocabulary, encoder.name
        self.tokenizer = encoder.tokenizer
        self.encoded = 0
        self.before_first_call = before_first_call

    def encode(self, texts, **options):
        if self.before_first_call is not None:
            hook, self.before_first_call = self.before_first_call, None
            hook()
        self.encoded += len(texts)
        return self.encoder.encode(texts, **options)


def make_source(client: OpenSearch, name: str, count: int = DOCS) -> None:
    rng = random.Random(5)
    client.indices.create(index=name, body={
        "settings": {"number_of_shards": 2, "number_of_replicas": 0},
        "mappings": {"properties": {"title": {"type": "keyword"}, "body": {"type": "text"}, "rank": {"type": "integer"},
                                    "tags": {"type": "keyword"}}},
    })
    helpers.bulk(client, ({"_index": name, "_id": f"doc-{n}", "_source": {
        "title": f"title {n}", "body": " ".join(rng.sample(MULTILINGUAL_SAMPLE, rng.randint(1, 2))), "rank": n,
        "tags": [f"t{n % 7}", "all"]}} for n in range(count)), refresh=True)


def plan(source: str, dest: str, *, slices: int = 3, batch_size: int = 64, resume: bool = False,
         skip_existing: bool = False, in_place: bool = False, model_name: str = "tiny-milco0") -> ReindexPlan:
    options = IngestOptions(text_field="body", batch_size=batch_size, prune=PruneSpec.parse(PRUNE),
                            model_name=model_name, skip_existing=skip_existing)
    return ReindexPlan(source, dest, options, slices=slices, resume=resume, in_place=in_place)


def run(client, encoder, reindex_plan: ReindexPlan, folder: Path, resume: bool = False):
    """One run with its checkpoint in ``folder`` (a fresh folder starts from scratch)."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = SliceCheckpoint.load_or_new(folder / "dead.checkpoint.json", reindex_plan.source,
                                             reindex_plan.dest, reindex_plan.slices, resume)
    return Reindexer(client, encoder, reindex_plan, checkpoint, DeadLetters(None)).run()


@pytest.fixture
def names(opensearch: OpenSearch):
    suffix = uuid.uuid4().hex[:8]
    created = (f"src-{suffix}", f"dst-{suffix}")
    yield created
    opensearch.indices.delete(index=",".join(created), ignore_unavailable=True)


def all_docs(client: OpenSearch, index: str) -> dict[str, dict]:
    client.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}


def test_reindex_with_three_slices_keeps_ids_fields_and_exact_vectors(opensearch: OpenSearch, opensearch_url: str,
                                                                      names, tmp_path: Path, tiny_checkpoint: Path,
                                                                      tiny_encoder: MilcoEncoder) -> None:
    source, dest = names
    make_source(opensearch, source)
    log = tmp_path / "progress.jsonl"
    result = run_cli("reindex", "--url", opensearch_url, "--source", source, "--dest", dest, "--text-field", "body",
                     "--model", str(tiny_checkpoint), "--slices", "3", "--prune", PRUNE,
                     "--dead-letter", str(tmp_path / "dead.jsonl"), "--json-log", str(log), timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads([line for line in result.stderr.splitlines() if line.startswith("{")][-1])
    assert (summary["read"], summary["written"], summary["failed"]) == (DOCS, DOCS, 0)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {line["slice"] for line in lines if "slice" in line} == {0, 1, 2}
    assert lines[-1]["summary"]["written"] == DOCS

    originals, copies = all_docs(opensearch, source), all_docs(opensearch, dest)
    assert copies.keys() == originals.keys()
    sample = sorted(originals)[:: DOCS // 50]
    vectors = tiny_encoder.encode([originals[i]["body"] for i in sample], prune=PRUNE)
    for doc_id, vector in zip(sample, vectors):
        copy = copies[doc_id]
        assert {k: copy[k] for k in originals[doc_id]} == originals[doc_id]
        expected = vector_fields(vector, tiny_encoder.vocabulary)
        for field, terms in expected.items():
            assert copy[field].keys() == terms.keys()
            assert all(abs(copy[field][k] - w) <= 1e-5 for k, w in terms.items())
    mapping = opensearch.indices.get_mapping(index=dest)[dest]["mappings"]["properties"]
    assert mapping["title"]["type"] == "keyword" and mapping["milco_en"]["type"] == "rank_features"


def test_sigkill_then_resume_loses_nothing_and_encodes_nothing_twice(opensearch: OpenSearch, opensearch_url: str,
                                                                     names, tmp_path: Path, tiny_checkpoint: Path,
                                                                     tiny_encoder: MilcoEncoder) -> None:
    source, dest = names
    make_source(opensearch, source)
    checkpoint_file = tmp_path / "dead.checkpoint.json"
    process = subprocess.Popen(
        milco_os_command("reindex", "--url", opensearch_url, "--source", source, "--dest", dest, "--text-field", "body",
                         "--model", str(tiny_checkpoint), "--slices", "3", "--batch-size", "8", "--prune", PRUNE,
                         "--dead-letter", str(tmp_path / "dead.jsonl")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def checkpointed() -> int:
        try:
            return sum(s["written"] for s in json.loads(checkpoint_file.read_text())["slices"].values())
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    try:
        wait_for(lambda: checkpointed() >= 300 or process.poll() is not None, timeout=300, interval=0.02,
                 what="the reindex to checkpoint 300 documents", detail=checkpointed)
    finally:
        process.kill()
        process.wait(timeout=30)
    # The bulk request in flight at the kill may still be applied by the cluster: count once writes have stopped.
    before = settled_count(opensearch, dest)
    assert 0 < before < DOCS, "the kill must land mid-run"

    counting = CountingEncoder(tiny_encoder)
    assert tiny_encoder.name == tiny_checkpoint.name  # the CLI run above recorded this model name
    summary = run(opensearch, counting, plan(source, dest, resume=True, batch_size=8, model_name=tiny_encoder.name),
                  tmp_path, resume=True)
    assert counting.encoded == DOCS - before
    copies = all_docs(opensearch, dest)
    assert len(copies) == DOCS and copies.keys() == all_docs(opensearch, source).keys()
    assert summary.failed == 0


def test_skip_existing_rewrites_nothing_unchanged_and_reencodes_edits(opensearch: OpenSearch, names, tmp_path: Path,
                                                                      tiny_encoder: MilcoEncoder) -> None:
    source, dest = names
    make_source(opensearch, source, count=300)
    run(opensearch, tiny_encoder, plan(source, dest), tmp_path)
    counting = CountingEncoder(tiny_encoder)
    again = run(opensearch, counting, plan(source, dest, skip_existing=True), tmp_path / "second")
    assert (again.written, again.skipped, counting.encoded) == (0, 300, 0)

    opensearch.update(index=source, id="doc-7", body={"doc": {"body": "Москва — столица России."}}, refresh=True)
    third = run(opensearch, counting, plan(source, dest, skip_existing=True), tmp_path / "third")
    assert (third.written, third.skipped, counting.encoded) == (1, 299, 1)
    stored = opensearch.get(index=dest, id="doc-7")["_source"]
    expected = vector_fields(tiny_encoder.encode(["Москва — столица России."], prune=PRUNE)[0], tiny_encoder.vocabulary)
    assert stored["body"] == "Москва — столица России." and stored["milco_en"].keys() == expected["milco_en"].keys()


def test_alias_moves_only_after_counts_verify(opensearch: OpenSearch, names, tmp_path: Path,
                                              tiny_encoder: MilcoEncoder) -> None:
    source, dest = names
    make_source(opensearch, source, count=120)
    alias = f"live-{uuid.uuid4().hex[:6]}"
    opensearch.indices.put_alias(index=source, name=alias)
    run(opensearch, tiny_encoder, plan(source, dest), tmp_path)

    opensearch.index(index=dest, id="stray", body={"body": "not from the source"}, refresh=True)
    with pytest.raises(ReindexError, match=f"Alias '{alias}' left alone: {source} has 120 documents but {dest} has 121"):
        move_alias(opensearch, alias, dest, source, dead_lettered=0)
    assert list(opensearch.indices.get_alias(name=alias)) == [source]

    opensearch.delete(index=dest, id="stray", refresh=True)
    assert move_alias(opensearch, alias, dest, source, dead_lettered=0) == f"alias {alias}: {source} -> {dest}"
    assert list(opensearch.indices.get_alias(name=alias)) == [dest]


def test_enrich_does_not_overwrite_a_document_updated_meanwhile(opensearch: OpenSearch, names, tmp_path: Path,
                                                                tiny_encoder: MilcoEncoder) -> None:
    source, _ = names
    make_source(opensearch, source, count=150)

    def concurrent_edit() -> None:
        opensearch.update(index=source, id="doc-3", body={"doc": {"body": "edited while enriching"}}, refresh=True)

    counting = CountingEncoder(tiny_encoder, before_first_call=concurrent_edit)
    summary = run(opensearch, counting, plan(source, source, slices=1, batch_size=50, in_place=True), tmp_path)
    assert summary.conflicts == 1 and summary.written == 149 and summary.failed == 0
    docs = all_docs(opensearch, source)
    assert docs["doc-3"]["body"] == "edited while enriching" and "milco_en" not in docs["doc-3"]
    assert all("milco_en" in doc and doc["milco_meta"]["prune"] == PRUNE for key, doc in docs.items() if key != "doc-3")

    rerun = run(opensearch, CountingEncoder(tiny_encoder),
                plan(source, source, slices=1, in_place=True, skip_existing=True), tmp_path / "rerun")
    assert (rerun.written, rerun.skipped) == (1, 149)


def test_options_come_from_a_yaml_config_and_flags_win(opensearch: OpenSearch, opensearch_url: str, names,
                                                       tmp_path: Path, tiny_checkpoint: Path) -> None:
    source, dest = names
    make_source(opensearch, source, count=40)
    config = tmp_path / "milco.yaml"
    config.write_text(f"url: {opensearch_url}\nsource: {source}\ndest: {dest}\ntext-field: body\n"
                      f"model: {tiny_checkpoint}\nprune: topk:3\nslices: 2\n")
    result = run_cli("reindex", "--config", str(config), "--prune", "topk:5", "--dead-letter", str(tmp_path / "dead.jsonl"),
                     timeout=300)
    assert result.returncode == 0, result.stderr
    stored = opensearch.get(index=dest, id="doc-1")["_source"]
    assert stored["milco_meta"]["prune"] == "topk:5" and len(stored["milco_en"]) + len(stored.get("milco_m", {})) == 5

    config.write_text("nonsense-option: 1\n")
    bad = run_cli("reindex", "--config", str(config), timeout=60)
    assert bad.returncode == 2 and "unknown option(s) nonsense_option" in bad.stderr


def test_reindex_into_passages_with_ids_from_a_field(opensearch: OpenSearch, names, tmp_path: Path,
                                                    tiny_encoder: MilcoEncoder) -> None:
    source, dest = names
    make_source(opensearch, source, count=30)
    options = IngestOptions(text_field="body", prune=PruneSpec.parse(PRUNE), passages=True,
                            passage_tokens=16, model_name=tiny_encoder.name)
    summary = run(opensearch, tiny_encoder, ReindexPlan(source, dest, options, slices=2, id_field="title"), tmp_path)
    assert summary.written == 30
    copies = all_docs(opensearch, dest)
    assert set(copies) == {f"title {n}" for n in range(30)}
    assert all(doc["milco_passages"] and "milco_en" not in doc for doc in copies.values())
    assert max(len(doc["milco_passages"]) for doc in copies.values()) > 1
