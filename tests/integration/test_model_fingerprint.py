"""An index records the model that wrote it; another model is refused, adopted, or moved to, on a real node."""

from __future__ import annotations

import json
import uuid
from functools import partial
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.encoding.fingerprint import fingerprint, short
from milco_os.model.tiny import make_tiny_checkpoint
from tests.commands import run_cli

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "data" / "small_corpus.jsonl"
CORPUS_DOCS = 24
MISMATCH_EXIT = 12

milco_os = partial(run_cli, timeout=300)


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> Path:
    """A checkpoint of the same name and shape as the suite's, with other weights."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("other") / tiny_checkpoint.name, seed=8)


@pytest.fixture
def names(opensearch: OpenSearch):
    made = [f"fp-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    yield made
    opensearch.indices.delete(index=",".join(made), ignore_unavailable=True)


def recorded_model(client: OpenSearch, index: str) -> dict | None:
    mapping = next(iter(client.indices.get_mapping(index=index).values()))["mappings"]
    return mapping["_meta"]["milco_os"].get("model")


def revisions(client: OpenSearch, index: str) -> dict[str, int]:
    """Documents by milco_meta.model_revision ('' for none)."""
    client.indices.refresh(index=index)
    body = {"size": 0, "aggs": {"r": {"terms": {"field": "milco_meta.model_revision", "missing": ""}}}}
    return {b["key"]: b["doc_count"] for b in client.search(index=index, body=body)["aggregations"]["r"]["buckets"]}


def ingest(url: str, index: str, checkpoint: Path, tmp_path: Path, *extra: str):
    return milco_os("ingest", "--url", url, "--index", index, "--model", str(checkpoint), "--dead-letter",
                    str(tmp_path / f"{index}-{uuid.uuid4().hex[:4]}.jsonl"), *extra, str(CORPUS))


def search(url: str, index: str, checkpoint: Path, *extra: str):
    return milco_os("search", "--url", url, "--index", index, "--model", str(checkpoint), "--format", "json",
                    *extra, "Berlin")


def test_an_index_refuses_the_other_model_unless_told(opensearch_url: str, opensearch: OpenSearch, names,
                                                      tiny_checkpoint: Path, other_checkpoint: Path,
                                                      tmp_path: Path) -> None:
    index = names[0]
    ours, theirs = fingerprint(tiny_checkpoint), fingerprint(other_checkpoint)
    assert ours != theirs
    made = milco_os("setup", "--url", opensearch_url, "--index", index, "--replicas", "0", "--model",
                    str(tiny_checkpoint))
    assert made.returncode == 0, made.stderr
    assert recorded_model(opensearch, index) == {"name": tiny_checkpoint.name, "fingerprint": ours}
    assert ingest(opensearch_url, index, tiny_checkpoint, tmp_path).returncode == 0
    assert revisions(opensearch, index) == {ours: CORPUS_DOCS}

    for refused in (ingest(opensearch_url, index, other_checkpoint, tmp_path),
                    search(opensearch_url, index, other_checkpoint)):
        assert refused.returncode == MISMATCH_EXIT, refused.stderr
        assert f"({short(ours)})" in refused.stderr and f"({short(theirs)})" in refused.stderr
        assert "--allow-other-model" in refused.stderr
    assert revisions(opensearch, index) == {ours: CORPUS_DOCS}  # nothing written by the refused ingest

    allowed = search(opensearch_url, index, other_checkpoint, "--allow-other-model")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["hits"], allowed.stderr
    assert "--allow-other-model" in allowed.stderr  # said, not silent
    mixed = ingest(opensearch_url, index, other_checkpoint, tmp_path, "--allow-other-model", "--batch-size", "8")
    assert mixed.returncode == 0, mixed.stderr
    assert revisions(opensearch, index) == {theirs: CORPUS_DOCS}
    assert recorded_model(opensearch, index)["fingerprint"] == ours  # the index still records its own model

    report = milco_os("status", "--url", opensearch_url, "--index", index, "--format", "json")
    assert report.returncode == 1, report.stderr  # a mixed index needs repair
    (entry,) = json.loads(report.stdout)
    assert entry["documents_by_model"] == [{"model": tiny_checkpoint.name, "fingerprint": theirs,
                                            "documents": CORPUS_DOCS}]
    assert entry["verdict"].startswith(f"mixed: {CORPUS_DOCS} documents of another model")

    # The repair the verdict names: the recorded model encodes its documents again, in place.
    repaired = milco_os("enrich", "--url", opensearch_url, "--index", index, "--model", str(tiny_checkpoint),
                        "--text-field", "text", "--re-encode", "--dead-letter", str(tmp_path / "repair.jsonl"))
    assert repaired.returncode == 0, repaired.stderr
    assert revisions(opensearch, index) == {ours: CORPUS_DOCS}
    report = milco_os("status", "--url", opensearch_url, "--index", index, "--format", "json")
    assert report.returncode == 0 and json.loads(report.stdout)[0]["verdict"] == "consistent", report.stdout


def test_an_index_written_before_fingerprints_is_adopted_with_a_warning(opensearch_url: str, opensearch: OpenSearch,
                                                                        names, tiny_checkpoint: Path,
                                                                        tmp_path: Path) -> None:
    index = names[0]
    assert milco_os("setup", "--url", opensearch_url, "--index", index, "--replicas", "0").returncode == 0
    assert recorded_model(opensearch, index) is None
    warned = search(opensearch_url, index, tiny_checkpoint)
    assert warned.returncode == 0 and f"index '{index}' records no model yet" in warned.stderr
    # Documents written by an older version: milco_meta without a fingerprint.
    opensearch.index(index=index, id="old", body={"text": "Berlin ist die Hauptstadt", "milco_meta": {
        "model": tiny_checkpoint.name, "model_revision": "", "prune": "none", "text_hash": "x"}}, refresh=True)

    adopted = ingest(opensearch_url, index, tiny_checkpoint, tmp_path)
    assert adopted.returncode == 0, adopted.stderr
    assert f"index '{index}' recorded no model: adopted for {tiny_checkpoint.name}" in adopted.stderr
    assert recorded_model(opensearch, index) == {"name": tiny_checkpoint.name,
                                                 "fingerprint": fingerprint(tiny_checkpoint)}
    report = json.loads(milco_os("status", "--url", opensearch_url, "--index", index, "--format", "json").stdout)
    assert report[0]["verdict"] == "1 documents written before documents recorded a fingerprint"


def test_reindex_with_a_new_model_moves_the_alias_once_every_document_is_on_it(
        opensearch_url: str, opensearch: OpenSearch, names, tiny_checkpoint: Path, other_checkpoint: Path,
        tmp_path: Path) -> None:
    old, new, alias = names[0], names[1], names[2]
    assert ingest(opensearch_url, old, tiny_checkpoint, tmp_path).returncode == 0
    opensearch.indices.put_alias(index=old, name=alias)
    moved = milco_os("reindex", "--url", opensearch_url, "--source", old, "--dest", new, "--alias", alias,
                     "--model", str(other_checkpoint), "--text-field", "text", "--slices", "2",
                     "--dead-letter", str(tmp_path / "move.jsonl"))
    assert moved.returncode == 0, moved.stderr
    assert list(opensearch.indices.get_alias(name=alias)) == [new]
    assert revisions(opensearch, new) == {fingerprint(other_checkpoint): CORPUS_DOCS}
    assert recorded_model(opensearch, new)["fingerprint"] == fingerprint(other_checkpoint)
    # Through the alias, the old model is now the other one.
    assert search(opensearch_url, alias, tiny_checkpoint).returncode == MISMATCH_EXIT
    assert search(opensearch_url, alias, other_checkpoint).returncode == 0
