"""Several nodes, processes and encoders: a 3-node cluster losing a data node mid-ingest and mid-reindex, a
reindex spread over worker processes and over hosts' shares, a Triton fleet losing its servers, and search,
passages and eval on three shards.

The cluster is started with ``milco-os dev-cluster start --nodes 3`` (512 MB heaps); the
indices have 3 primaries and 1 replica. Every job is audited: each document present once
with the vector the in-process encoder gives its text.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch, helpers

from milco_os.encoding.passages import split_passages
from milco_os.encoding.pruning import PruneSpec
from milco_os.index.fields import EN_FIELD, M_FIELD
from milco_os.index.handle import open_index
from milco_os.index.setup import ensure_index
from milco_os.model import MilcoEncoder
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.sources import DictSource
from milco_os.search.searcher import SearchOptions, search
from milco_os.serving.triton_repository import export_repository
from milco_os.services.ports import free_port, is_port_free
from milco_os.services.triton_server import TritonServer
from tests.reliability.harness import (
    DevCluster,
    Row,
    audit,
    consecutive_free_ports,
    corpus,
    expected_fields,
    ingested_lines,
    reindexed_documents,
    summary_of,
    wait_for_progress,
    write_jsonl,
)
from tests.integration.test_sparse_index import (
    DOC_PRUNE,
    assert_same_ranking,
    assert_top10_is_exact,
    exact_dot,
    queries,
)
from tests.integration.test_sparse_index import corpus as fidelity_corpus
from tests.commands import milco_os_command, run_cli
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

NODES = 3
DOCS = 800


@pytest.fixture(scope="module")
def cluster() -> Iterator[DevCluster]:
    started = DevCluster(consecutive_free_ports(NODES), NODES, heap="512m")
    try:
        started.start()
        yield started
    finally:
        started.stop()


def start_job(command: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(milco_os_command(command, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def source_index(cluster: DevCluster, name: str, documents: list[dict]) -> None:
    """A plain index (3 primaries, 1 replica) holding ``documents``, as an application wrote it."""
    client = cluster.client()
    client.indices.create(index=name, body={"settings": {"number_of_shards": NODES, "number_of_replicas": 1}})
    helpers.bulk(client, ({"_index": name, "_id": d["id"], **d} for d in documents), refresh=True)


def recovered_on_every_node(cluster: DevCluster, index: str, victim: int) -> int:
    """After the victim is back: the cluster is green, every node counts all documents, and the victim holds
    started shard copies again; returns how many."""
    cluster.wait_green()
    for port in cluster.ports:
        client = cluster.client(port)
        client.indices.refresh(index=index)
        assert client.count(index=index)["count"] == DOCS, f"node {port} counts otherwise"
    shards = cluster.client().cat.shards(index=index, format="json")
    on_victim = [shard for shard in shards if shard["node"] == f"milco-os-{victim}" and shard["state"] == "STARTED"]
    assert on_victim, f"no shard copy recovered on the restarted node: {shards}"
    return len(on_victim)


def test_ingest_rides_out_a_data_node_killed_mid_job(cluster: DevCluster, tiny_checkpoint: Path,
                                                     tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    status = run_cli("dev-cluster", "status")
    assert status.returncode == 0
    listed = [line for line in status.stdout.splitlines() if f"milco-os-dev-{cluster.ports[0]}" in line]
    assert len(listed) == NODES and all(" green " in line and f" {NODES} " in line for line in listed), status.stdout
    index = "ingest-node-killed"
    setup = run_cli("setup", "--url", cluster.url, "--index", index, "--shards", str(NODES), "--replicas", "1")
    assert setup.returncode == 0, setup.stderr
    documents = corpus(DOCS)
    dead = tmp_path / "dead.jsonl"
    job = start_job("ingest", "--url", cluster.url, "--index", index, "--model", str(tiny_checkpoint),
                    "--batch-size", "32", "--unavailable-timeout", "180", "--dead-letter", str(dead),
                    str(write_jsonl(tmp_path / "docs.jsonl", documents)))
    line_at_fault = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job, DOCS // 4)
    victim = cluster.a_port_not_managing()
    cluster.kill(victim)
    _, stderr = job.communicate(timeout=600)

    assert job.returncode == 0, stderr
    assert line_at_fault < DOCS
    result = audit(cluster.client(), index, expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    cluster.start()
    copies = recovered_on_every_node(cluster, index, victim)
    record(Row("cluster", "3 nodes, 3 primaries + 1 replica: a data node SIGKILLed mid-ingest", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "0",
               f"killed after line {line_at_fault}; restarted: {copies} shard copies recovered on it, every node "
               f"counts {DOCS}"))


def test_reindex_over_worker_processes_rides_out_a_data_node_killed(
        cluster: DevCluster, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    documents = corpus(DOCS, prefix="re")
    source_index(cluster, "reindex-source", documents)
    dead = tmp_path / "dead.jsonl"
    job = start_job("reindex", "--url", cluster.url, "--source", "reindex-source", "--dest", "reindex-dest",
                    "--text-field", "text", "--model", str(tiny_checkpoint), "--workers", "2", "--slices", "4",
                    "--batch-size", "32", "--unavailable-timeout", "180", "--dead-letter", str(dead))
    read_at_fault = wait_for_progress(reindexed_documents(dead.with_suffix(".checkpoint.json")), job, DOCS // 4)
    victim = cluster.a_port_not_managing()
    cluster.kill(victim)
    _, stderr = job.communicate(timeout=600)

    assert job.returncode == 0, stderr
    assert summary_of(stderr)["read"] == DOCS
    result = audit(cluster.client(), "reindex-dest", expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    cluster.start()
    copies = recovered_on_every_node(cluster, "reindex-dest", victim)
    record(Row("cluster", "3 nodes: a data node SIGKILLed mid-reindex (2 worker processes, 4 slices)", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "0",
               f"killed after {read_at_fault} read; restarted: {copies} shard copies recovered on it"))


def stored_documents(client: OpenSearch, index: str) -> dict[str, dict]:
    """Every document's source by id, without the encoding time (which two runs differ in)."""
    client.indices.refresh(index=index)
    documents = {}
    for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}}):
        source = hit["_source"]
        source["milco_meta"].pop("encoded_at", None)
        documents[hit["_id"]] = source
    return documents


def differences(got: dict[str, dict], want: dict[str, dict], rel: float = 1e-4) -> list[str]:
    """Ids missing or extra, and documents whose fields differ: equal fields, the same vector terms, weights within
    ``rel`` (texts batched otherwise pad otherwise, which moves the last float bits)."""
    found = sorted(set(got) ^ set(want))
    for doc_id in sorted(set(got) & set(want)):
        mine, theirs = got[doc_id], want[doc_id]
        vectors = (EN_FIELD, M_FIELD)
        plain_fields = {k: v for k, v in mine.items() if k not in vectors}
        if plain_fields != {k: v for k, v in theirs.items() if k not in vectors}:
            found.append(doc_id)
            continue
        for field in vectors:
            a, b = mine.get(field) or {}, theirs.get(field) or {}
            if a.keys() != b.keys() or any(abs(a[k] - b[k]) > rel * max(1.0, abs(b[k])) for k in b):
                found.append(doc_id)
                break
    return found


def test_worker_processes_and_hosts_shares_give_what_one_process_gives(
        cluster: DevCluster, tiny_checkpoint: Path, tmp_path: Path, record) -> None:
    documents = corpus(DOCS // 2, prefix="eq")
    source_index(cluster, "equal-source", documents)
    common = ("--url", cluster.url, "--source", "equal-source", "--text-field", "text", "--model",
              str(tiny_checkpoint))
    jobs = {"one": start_job("reindex", *common, "--dest", "one-process", "--dead-letter", str(tmp_path / "one.jsonl")),
            "workers": start_job("reindex", *common, "--dest", "two-workers", "--workers", "2",
                                 "--dead-letter", str(tmp_path / "two.jsonl"))}
    shares = [start_job("reindex", *common, "--dest", "two-shares", "--slices", "4", "--share", f"{k}/2",
                        "--alias", "equal-live", "--dead-letter", str(tmp_path / f"share-{k}.jsonl"))
              for k in (1, 2)]
    for name, job in jobs.items():
        stderr = job.communicate(timeout=600)[1]
        assert job.returncode == 0, (name, stderr)
    outputs = [share.communicate(timeout=600)[1] for share in shares]

    assert [share.returncode for share in shares] == [0, 0], outputs
    moved = [stderr for stderr in outputs if "alias equal-live: (none) -> two-shares" in stderr]
    waited = [stderr for stderr in outputs if "the job waits for share(s)" in stderr]
    assert len(moved) == 1 and len(waited) == 1, outputs
    client = cluster.client()
    assert list(client.indices.get_alias(name="equal-live")) == ["two-shares"]
    reads = [summary_of(stderr)["read"] for stderr in outputs]
    assert sum(reads) == len(documents) and all(reads), reads
    one = stored_documents(client, "one-process")
    assert len(one) == len(documents)
    assert not differences(stored_documents(client, "two-workers"), one)
    assert not differences(stored_documents(client, "two-shares"), one)

    waited_share = 1 + outputs.index(waited[0])  # resumed after the job completed: recognised, not a new run
    resumed = start_job("reindex", *common, "--dest", "two-shares", "--slices", "4", "--share", f"{waited_share}/2",
                        "--alias", "equal-live", "--dead-letter", str(tmp_path / f"share-{waited_share}.jsonl"),
                        "--resume")
    stderr = resumed.communicate(timeout=600)[1]
    assert resumed.returncode == 0, stderr
    assert "every share of equal-source -> two-shares is done (2 shares)" in stderr, stderr
    assert summary_of(stderr)["read"] == reads[waited_share - 1]  # the share's whole job, from its checkpoint
    ledger = client.get(index="milco-os-jobs", id="reindex:equal-source:two-shares")["_source"]
    assert ledger["complete"] and sorted(ledger["done"]) == ["1", "2"]
    assert list(client.indices.get_alias(name="equal-live")) == ["two-shares"]
    record(Row("cluster", "reindex over 2 worker processes, and over 2 hosts' shares (--share 1/2, 2/2)", "CLI",
               len(documents), len(one), 0, 0, 0, "0, 0, 0",
               f"ids, fields and vectors equal to a one-process reindex; shares read {reads[0]} + {reads[1]}; "
               "the alias moved once, by the share that completed the job; the other share resumed afterwards "
               "was recognised as recorded"))


def test_triton_fleet_loses_a_server_then_all_of_them(cluster: DevCluster, tiny_checkpoint: Path,
                                                      tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    export_repository(tiny_checkpoint, tmp_path / "repo", device="cpu")
    ports = [{"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()} for _ in range(2)]
    servers = [TritonServer(tmp_path / "repo", log_file=tmp_path / f"triton-{n}.log", **ports[n]).start()
               for n in range(2)]
    documents = corpus(DOCS, prefix="fleet")
    dead = tmp_path / "dead.jsonl"
    checkpoint = dead.with_suffix(".checkpoint.json")
    args = ("--url", cluster.url, "--index", "fleet", "--triton-url", ",".join(s.grpc_url for s in servers),
            "--batch-size", "16", "--unavailable-timeout", "5", "--dead-letter", str(dead),
            str(write_jsonl(tmp_path / "docs.jsonl", documents)))
    try:
        job = start_job("ingest", *args)
        first_fault = wait_for_progress(ingested_lines(checkpoint), job, DOCS // 4)
        servers[0].process.kill()
        second_fault = wait_for_progress(ingested_lines(checkpoint), job, first_fault + DOCS // 4)
        servers[1].process.kill()
        _, stderr = job.communicate(timeout=300)

        assert job.returncode == 7, stderr
        assert "Every Triton server" in stderr and "Traceback" not in stderr
        assert f"Triton at {servers[0].grpc_url} set aside" in stderr
        done = json.loads(checkpoint.read_text())["line"]
        assert second_fault <= done < DOCS
        servers[1].stop()
        wait_for(lambda: all(is_port_free(port) for port in ports[1].values()), timeout=60,
                 what="the killed tritonserver's ports to be free")
        servers[1] = TritonServer(tmp_path / "repo", log_file=tmp_path / "triton-1b.log", **ports[1]).start()
        resumed = run_cli("ingest", *args, "--resume")
    finally:
        for server in servers:
            server.stop()

    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after line {done}" in resumed.stderr
    result = audit(cluster.client(), "fleet", expected_fields(tiny_encoder, documents))
    assert not result.problems(DOCS)
    record(Row("encoders", "2 tritonservers: one SIGKILLed mid-ingest, the job goes on with the other", "CLI",
               DOCS, result.stored, 0, 0, result.duplicated, "-",
               f"killed after line {first_fault}; the other served on to line {second_fault}"))
    record(Row("encoders", "both tritonservers down longer than --unavailable-timeout, then --resume on one",
               "CLI", DOCS, result.stored, 0, 0, result.duplicated, "7, then 0",
               f"checkpoint at line {done}; resume read {DOCS - done}"))


def test_search_passages_and_eval_on_three_shards_score_the_exact_dot_product(
        cluster: DevCluster, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder, tmp_path: Path) -> None:
    client = cluster.client()
    ensure_index(client, "fidelity", shards=NODES, replicas=1)
    documents = fidelity_corpus()
    options = IngestOptions(prune=PruneSpec.parse(DOC_PRUNE), batch_size=50)
    summary = Ingestor(open_index(client, "fidelity"), tiny_encoder, options, DeadLetters(None)).run(
        DictSource(documents))
    client.indices.refresh(index="fidelity")
    assert summary.written == len(documents)
    primaries = {s["node"] for s in client.cat.shards(index="fidelity", format="json") if s["prirep"] == "p"}
    assert len(primaries) > 1, "the primaries should spread over the nodes"
    vectors = dict(zip((d["id"] for d in documents),
                       tiny_encoder.encode([d["text"] for d in documents], prune=DOC_PRUNE)))
    texts = queries()[:8]
    relevant = {}
    for number, text in enumerate(texts):
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        exact = sorted(((exact_dot(query_vector, v, True), doc_id) for doc_id, v in vectors.items()), reverse=True)
        relevant[f"q{number}"] = exact[0][1]
        full = search(open_index(client, "fidelity"), tiny_encoder, text, SearchOptions(size=10))
        assert_top10_is_exact(full, exact, vectors, query_vector, True)
        # Each shard rescores a window over all its candidates: the full ranking again.
        whole = search(open_index(client, "fidelity"), tiny_encoder, text,
                       SearchOptions(size=10, two_phase=True, first_phase_terms=16, window=len(documents)))
        assert_same_ranking(whole, full)

    topics = write_jsonl(tmp_path / "queries.jsonl", [{"_id": f"q{n}", "text": t} for n, t in enumerate(texts)])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t1\n" for q, d in relevant.items()))
    run = tmp_path / "run.trec"
    scored = run_cli("eval", "--url", cluster.url, "--index", "fidelity", "--model", str(tiny_checkpoint),
                     "--queries", str(topics), "--qrels", str(qrels), "--metrics", "recall@10", "--depth", "10",
                     "--run-out", str(run))
    assert scored.returncode == 0, scored.stderr
    top = {}
    for line in run.read_text().splitlines():
        query_id, _, doc_id, *_ = line.split()
        top.setdefault(query_id, []).append(doc_id)
    assert all(relevant[q] in top[q] for q in relevant), "eval's run must hold each query's exact best document"

    ensure_index(client, "fidelity-passages", passages=True, shards=NODES, replicas=1)
    short = documents[:40]
    options = IngestOptions(prune=PruneSpec.parse(DOC_PRUNE), passages=True, passage_tokens=24)
    Ingestor(open_index(client, "fidelity-passages"), tiny_encoder, options, DeadLetters(None)).run(DictSource(short))
    client.indices.refresh(index="fidelity-passages")
    best = {d["id"]: tiny_encoder.encode([p.text for p in split_passages(tiny_encoder.tokenizer, d["text"],
                                                                          max_tokens=24)],
                                         max_length=24, prune=DOC_PRUNE) for d in short}
    for text in texts:
        query_vector = tiny_encoder.encode([text], max_length=64)[0]
        hits = search(open_index(client, "fidelity-passages"), tiny_encoder, text,
                      SearchOptions(size=5, passages=True))
        assert hits
        for hit in hits:
            assert hit.score == pytest.approx(max(query_vector.dot(v) for v in best[hit.id]), rel=1e-2)
