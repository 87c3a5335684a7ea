"""Index-level faults mid-ingest (a write block, the flood-stage block, a closed index): waited for, never
dead-lettered; one that outlasts ``--unavailable-timeout`` stops the job with exit code 11, and ``--resume``
stores the rest.

Every test ends by auditing the index: each document present exactly once with the vector the
in-process encoder gives its text.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Callable

import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.model import MilcoEncoder
from tests.commands import run_cli
from tests.reliability.harness import Job, Row, audit, corpus, expected_fields, ingested_lines, \
    reindexed_documents, summary_of, wait_for_progress, write_jsonl
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

DOCS = 1500
WAITING = "the index refuses writes"


def write_block(client: OpenSearch, index: str, on: bool) -> None:
    client.indices.put_settings(index=index, body={"index.blocks.write": True if on else None})


def flood_stage_block(client: OpenSearch, index: str, on: bool) -> None:
    client.indices.put_settings(index=index, body={"index.blocks.read_only_allow_delete": True if on else None})


def closed(client: OpenSearch, index: str, on: bool) -> None:
    if on:
        client.indices.close(index=index)
    else:
        client.indices.open(index=index, params={"wait_for_active_shards": "1"})


FAULTS: dict[str, tuple[Callable[[OpenSearch, str, bool], None], str]] = {
    "write block (index.blocks.write)": (write_block, "cluster_block_exception"),
    "flood-stage block (index.blocks.read_only_allow_delete)": (flood_stage_block, "cluster_block_exception"),
    # closing blocks writes first ("index preparing to close"), then refuses them as closed
    "index closed": (closed, "index_closed_exception|cluster_block_exception"),
}


def started_mid_job(opensearch: OpenSearch, opensearch_url: str, index: str, folder: Path, tiny_checkpoint: Path,
                    timeout_s: int) -> tuple[Job, tuple[str, ...], Path, list[dict], int]:
    """An ingest of ``DOCS`` documents into a new ``index``, a quarter of the way through: the job, its arguments,
    its dead-letter path, the documents and the line its checkpoint had reached."""
    opensearch.indices.delete(index=index, ignore_unavailable=True)
    documents = corpus(DOCS)
    source = write_jsonl(folder / "docs.jsonl", documents)
    dead = folder / "dead.jsonl"
    args = ("--url", opensearch_url, "--index", index, "--model", str(tiny_checkpoint), "--batch-size", "16",
            "--unavailable-timeout", str(timeout_s), "--dead-letter", str(dead), str(source))
    job = Job(*args)
    line = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job.process, DOCS // 4)
    return job, args, dead, documents, line


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_index_fault_lifted_within_the_wait_is_waited_out_and_nothing_dead_lettered(
        fault: str, opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
        tmp_path: Path, record) -> None:
    apply, error_type = FAULTS[fault]
    index = f"index-fault-{list(FAULTS).index(fault)}"
    job, _, dead, documents, line_at_fault = started_mid_job(opensearch, opensearch_url, index, tmp_path,
                                                             tiny_checkpoint, 180)
    apply(opensearch, index, True)
    try:
        wait_for(lambda: job.said(WAITING), timeout=120, what="the job to meet the fault and say it waits")
    finally:
        apply(opensearch, index, False)
    stderr = job.finish()

    assert job.process.returncode == 0, stderr
    waits = [line for line in stderr.splitlines() if WAITING in line]
    assert waits and any(kind in waits[0] for kind in error_type.split("|")), stderr
    assert not dead.exists(), "nothing may be dead-lettered for the index's state"
    summary = summary_of(stderr)
    assert summary["failed"] == 0 and summary["index_fault_retries"] > 0
    result = audit(opensearch, index, expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    opensearch.indices.delete(index=index)
    record(Row("index fault", f"{fault} mid-ingest, lifted within --unavailable-timeout", "CLI", DOCS,
               result.stored, 0, 0, result.duplicated, "0",
               f"applied after line {line_at_fault}; {summary['index_fault_retries']} documents sent again"))


@pytest.mark.parametrize("fault", ["write block (index.blocks.write)", "index closed"])
def test_an_index_fault_outlasting_the_wait_stops_with_exit_11_then_resume_stores_everything_once(
        fault: str, opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
        tmp_path: Path, record) -> None:
    apply, error_type = FAULTS[fault]
    index = f"index-fault-long-{list(FAULTS).index(fault)}"
    job, args, dead, documents, _ = started_mid_job(opensearch, opensearch_url, index, tmp_path, tiny_checkpoint, 3)
    checkpoint = dead.with_suffix(".checkpoint.json")
    apply(opensearch, index, True)
    stderr = job.finish()

    assert job.process.returncode == 11, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "refused writes for 3 s" in errors[0], stderr
    assert any(kind in errors[0] for kind in error_type.split("|")), stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not dead.exists() or not dead.read_text(), "nothing may be dead-lettered for the index's state"
    done = json.loads(checkpoint.read_text())["line"]
    assert 0 < done < DOCS
    apply(opensearch, index, False)
    resumed = run_cli("ingest", *args, "--resume")

    assert resumed.returncode == 0, resumed.stderr
    assert summary_of(resumed.stderr)["read"] == DOCS - done and not checkpoint.exists()
    result = audit(opensearch, index, expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    opensearch.indices.delete(index=index)
    record(Row("index fault", f"{fault} mid-ingest, longer than --unavailable-timeout, then --resume", "CLI", DOCS,
               result.stored, 0, 0, result.duplicated, "11, then 0",
               f"checkpoint at line {done}; resume read {DOCS - done}"))


@pytest.mark.parametrize("command", ["search", "eval"])
def test_a_missing_or_closed_index_stops_a_search_with_exit_13_in_one_line(
        command: str, opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tmp_path: Path,
        record) -> None:
    index = f"index-fault-search-{command}"
    queries = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "Berlin"}])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tdoc-1\t1\n", encoding="utf-8")
    ask = {"search": ("Berlin",), "eval": ("--queries", str(queries), "--qrels", str(qrels))}[command]

    def run(name: str) -> subprocess.CompletedProcess:
        return run_cli(command, "--url", opensearch_url, "--index", name, "--model", str(tiny_checkpoint), *ask,
                       timeout=300)

    opensearch.indices.delete(index=index, ignore_unavailable=True)
    missing = run(index)
    opensearch.indices.create(index=index, body={"settings": {"number_of_replicas": 0}})
    opensearch.indices.close(index=index)
    shut = run(index)
    opensearch.indices.delete(index=index)

    for result, says in ((missing, "no such index"), (shut, "closed")):
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert result.returncode == 13, result.stderr
        assert len(errors) == 1 and says in errors[0] and index in errors[0], result.stderr
        assert "Traceback" not in result.stderr
    record(Row("index fault", f"{command} on a missing, then a closed index", "CLI", 0, 0, 0, 0, 0, "13",
               "one line naming the index"))


def test_an_alias_moved_mid_job_keeps_the_jobs_writes_in_its_index(
        opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
        tmp_path: Path, record) -> None:
    first, second, alias = "index-fault-alias-1", "index-fault-alias-2", "index-fault-alias"
    opensearch.indices.delete(index=f"{first},{second}", ignore_unavailable=True)
    for name in (first, second):
        assert run_cli("setup", "--url", opensearch_url, "--index", name, "--replicas", "0").returncode == 0
    opensearch.indices.put_alias(index=first, name=alias)
    documents = corpus(DOCS)
    dead = tmp_path / "dead.jsonl"
    job = Job("--url", opensearch_url, "--index", alias, "--model", str(tiny_checkpoint), "--batch-size", "16",
              "--dead-letter", str(dead), str(write_jsonl(tmp_path / "docs.jsonl", documents)))
    line = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job.process, DOCS // 4)
    opensearch.indices.update_aliases(body={"actions": [{"remove": {"index": first, "alias": alias}},
                                                        {"add": {"index": second, "alias": alias}}]})
    stderr = job.finish()

    assert job.process.returncode == 0, stderr
    assert f"writing into {first}, the index alias {alias} points at" in stderr
    assert not dead.exists()
    result = audit(opensearch, first, expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    opensearch.indices.refresh(index=second)
    assert opensearch.count(index=second)["count"] == 0
    opensearch.indices.delete(index=f"{first},{second}")
    record(Row("index fault", "alias moved to another index mid-ingest", "CLI", DOCS, result.stored, 0, 0,
               result.duplicated, "0", f"moved after line {line}; every write stays in the index the job began in"))


@pytest.mark.parametrize("command", ["reindex", "enrich"])
def test_a_write_block_on_a_reindex_over_worker_processes_is_waited_out(
        command: str, opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
        tmp_path: Path, record) -> None:
    source, dest = f"index-fault-{command}-source", f"index-fault-{command}-dest"
    opensearch.indices.delete(index=f"{source},{dest}", ignore_unavailable=True)
    documents = corpus(DOCS)
    opensearch.indices.create(index=source, body={"settings": {"number_of_shards": 2, "number_of_replicas": 0}})
    helpers.bulk(opensearch, ({"_index": source, "_id": d["id"], "_source": d} for d in documents), refresh=True)
    target = source if command == "enrich" else dest
    where = ("--index", source) if command == "enrich" else ("--source", source, "--dest", dest)
    dead = tmp_path / "dead.jsonl"
    job = Job("--url", opensearch_url, *where, "--model", str(tiny_checkpoint), "--text-field", "text",
              "--workers", "2", "--batch-size", "16", "--unavailable-timeout", "180", "--dead-letter", str(dead),
              command=command)
    read = wait_for_progress(reindexed_documents(dead.with_suffix(".checkpoint.json")), job.process, DOCS // 4)
    write_block(opensearch, target, True)
    try:
        wait_for(lambda: job.said(WAITING), timeout=120, process=job.process,
                 what=f"a {command} worker to meet the block and say it waits")
    finally:
        write_block(opensearch, target, False)
    stderr = job.finish()

    assert job.process.returncode == 0, stderr
    assert "cluster_block_exception" in next(line for line in stderr.splitlines() if WAITING in line)
    assert not dead.exists(), "nothing may be dead-lettered for the index's state"
    summary = summary_of(stderr)
    assert (summary["read"], summary["failed"]) == (DOCS, 0)
    result = audit(opensearch, target, expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    opensearch.indices.delete(index=f"{source},{dest}", ignore_unavailable=True)
    record(Row("index fault", f"write block mid-{command}, 2 worker processes, lifted within --unavailable-timeout",
               "CLI", DOCS, result.stored, 0, 0, result.duplicated, "0", f"applied after {read} documents read"))


def test_an_index_deleted_mid_job_stops_it_instead_of_writing_into_the_index_the_cluster_makes_anew(
        opensearch: OpenSearch, opensearch_url: str, tiny_checkpoint: Path, tmp_path: Path, record) -> None:
    index = "index-fault-deleted"
    job, _, dead, _, line = started_mid_job(opensearch, opensearch_url, index, tmp_path, tiny_checkpoint, 30)
    opensearch.indices.delete(index=index)
    stderr = job.finish()

    assert job.process.returncode == 11, stderr
    errors = [text for text in stderr.splitlines() if text.startswith("Error: ")]
    assert len(errors) == 1 and f"index '{index}' was deleted during the job" in errors[0], stderr
    assert "Traceback" not in stderr and not (dead.exists() and dead.read_text())
    checkpoint = json.loads(dead.with_suffix(".checkpoint.json").read_text())["line"]
    opensearch.indices.refresh(index=index, ignore_unavailable=True)
    remade = opensearch.indices.exists(index=index)
    written_since = opensearch.count(index=index)["count"] if remade else 0
    # At most the batches in flight when it was deleted reached a new index, and the checkpoint counts none of them.
    assert written_since <= 2 * 16, written_since
    assert checkpoint < DOCS
    opensearch.indices.delete(index=index, ignore_unavailable=True)
    record(Row("index fault", "index deleted mid-ingest", "CLI", DOCS, 0, 0, DOCS, 0, "11",
               f"deleted after line {line}; stopped at checkpoint line {checkpoint}, {written_since} documents in the "
               "index the cluster made anew; the job is to be run again"))
