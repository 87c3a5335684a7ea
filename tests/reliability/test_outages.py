"""Outages mid-job: the OpenSearch node stopped and restarted, backpressure (429), tritonserver killed.

Every test ends by auditing the index: each document present exactly once with the
vector the in-process encoder gives its text.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import DictSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.services.ports import free_port, is_port_free
from milco_os.services.triton_server import TritonServer
from milco_os.serving.triton_repository import export_repository
from tests.reliability.harness import (
    Row,
    audit,
    corpus,
    expected_fields,
    ingested_lines,
    summary_of,
    wait_for_progress,
    write_jsonl,
)
from tests.commands import milco_os_command, run_cli
from tests.waiting import wait_for, wait_for_connection_attempt

pytestmark = pytest.mark.integration

DOCS = 3000


def start_ingest(*args: str) -> subprocess.Popen:
    return subprocess.Popen(milco_os_command("ingest", *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_node_restart_within_the_wait_window_is_ridden_out(own_node, tiny_checkpoint: Path,
                                                           tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    node = own_node()
    documents = corpus(DOCS)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    dead = tmp_path / "dead.jsonl"
    job = start_ingest("--url", node.url, "--index", "outage", "--model", str(tiny_checkpoint), "--batch-size", "16",
                       "--unavailable-timeout", "180", "--dead-letter", str(dead), str(source))
    line_at_fault = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job, DOCS // 4)
    node.stop()
    # Keep the node down until the job has come back to it, so that its writes wait for the restart.
    wait_for_connection_attempt(urlsplit(node.url).port, timeout=120, what="the job to retry the stopped node",
                                alive=lambda: job.poll() is None)
    node.start()
    _, stderr = job.communicate(timeout=600)

    assert job.returncode == 0, stderr
    assert line_at_fault < DOCS
    summary = summary_of(stderr)
    assert summary["unavailable_retries"] > 0, "the node was down, so the job must have waited for it"
    result = audit(node.client(), "outage", expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    record(Row("outage", "OpenSearch node stopped mid-ingest, restarted within --unavailable-timeout", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "0",
               f"stopped after line {line_at_fault}; {summary['unavailable_retries']} waits"))


def test_node_down_longer_than_the_window_stops_with_a_checkpoint_then_resumes(
        own_node, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    node = own_node()
    documents = corpus(DOCS)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    dead = tmp_path / "dead.jsonl"
    checkpoint = dead.with_suffix(".checkpoint.json")
    args = ("--url", node.url, "--index", "outage", "--model", str(tiny_checkpoint), "--batch-size", "16",
            "--unavailable-timeout", "3", "--dead-letter", str(dead), str(source))
    job = start_ingest(*args)
    wait_for_progress(ingested_lines(checkpoint), job, DOCS // 4)
    node.stop()
    _, stderr = job.communicate(timeout=300)

    assert job.returncode == 4, stderr
    assert f"the cluster at {node.url}" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    done = json.loads(checkpoint.read_text())["line"]
    assert 0 < done < DOCS
    node.start()
    left_over = node.client().count(index="outage")["count"]
    resumed = run_cli("ingest", *args, "--resume")

    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after line {done}" in resumed.stderr
    assert summary_of(resumed.stderr)["read"] == DOCS - done
    assert not checkpoint.exists()
    result = audit(node.client(), "outage", expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    record(Row("outage", "OpenSearch node down longer than --unavailable-timeout, then --resume", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "4, then 0",
               f"{left_over} stored before the stop; checkpoint at line {done}; resume read {DOCS - done}"))


def test_write_queue_rejections_are_retried_and_counted(own_node, tiny_encoder: MilcoEncoder, record) -> None:
    node = own_node(extra={"thread_pool.write.size": 1, "thread_pool.write.queue_size": 2})
    client = node.client()
    client.indices.create(index="busy", body={
        "settings": {"number_of_shards": 4, "number_of_replicas": 0},
        "mappings": {"properties": {"milco_en": {"type": "rank_features"}, "milco_m": {"type": "rank_features"}}}})
    documents = corpus(2400)
    parts = [documents[start::6] for start in range(6)]
    summaries, letters = [], DeadLetters(None)

    def ingest(part: list[dict]) -> None:
        options = IngestOptions(batch_size=8)
        summaries.append(Ingestor(open_index(node.client(), "busy"), tiny_encoder, options, letters).run(DictSource(part)))

    threads = [threading.Thread(target=ingest, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    retried = sum(summary.rejected_429 for summary in summaries)
    assert retried > 0, "six writers against a write queue of 2 must have been pushed back"
    assert letters.count == 0 and sum(summary.written for summary in summaries) == len(documents)
    result = audit(client, "busy", expected_fields(tiny_encoder, documents))
    assert not result.problems(len(documents))
    record(Row("backpressure", "6 parallel writers, thread_pool.write.queue_size 2 (429 rejections)", "Python API",
               len(documents), result.stored, letters.count, 0, result.duplicated, "-",
               f"{retried} rejections retried with backoff"))


def test_tritonserver_killed_and_restarted_mid_ingest(own_node, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
                                                      tmp_path: Path, record) -> None:
    node = own_node()
    export_repository(tiny_checkpoint, tmp_path / "repo", device="cpu")
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    server = TritonServer(tmp_path / "repo", log_file=tmp_path / "triton-1.log", **ports).start()
    documents = corpus(DOCS)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    dead = tmp_path / "dead.jsonl"
    job = start_ingest("--url", node.url, "--index", "triton-outage", "--triton-url", server.grpc_url,
                       "--batch-size", "16", "--unavailable-timeout", "180", "--dead-letter", str(dead), str(source))
    try:
        line_at_fault = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job, DOCS // 4)
        server.process.kill()
        server.stop()
        wait_for(lambda: all(is_port_free(port) for port in ports.values()), timeout=60,
                 what="the killed tritonserver's ports to be free")
        server = TritonServer(tmp_path / "repo", log_file=tmp_path / "triton-2.log", **ports).start()
        _, stderr = job.communicate(timeout=600)
    finally:
        server.stop()

    assert job.returncode == 0, stderr
    assert line_at_fault < DOCS
    result = audit(node.client(), "triton-outage", expected_fields(tiny_encoder, documents), rel=1e-4)
    assert not result.problems(DOCS)
    record(Row("outage", "tritonserver SIGKILLed mid-ingest, restarted on the same ports", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "0", f"killed after line {line_at_fault}"))
