"""What the reliability tests share: the CLI in a subprocess, a test corpus, the index audit, a restartable node."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from opensearchpy import OpenSearch, helpers

from milco_os.index.fields import EN_FIELD, M_FIELD, vector_fields
from milco_os.model import MilcoEncoder
from milco_os.services.ports import free_port, is_port_free
from milco_os.services.processes import pid_alive
from milco_os.services.search_node import SearchNode, dev_cluster_node
from milco_os.model.tiny import MULTILINGUAL_SAMPLE
from tests.commands import milco_os_command, run_cli
from tests.waiting import wait_for


@dataclass
class Row:
    """One case of the matrix; ``lost`` is what is neither stored, dead-lettered, reported as left to do, nor
    superseded by a later document with the same id (reported as a duplicate)."""

    area: str
    case: str
    interface: str
    sent: int
    stored: int
    dead_lettered: int
    left_for_rerun: int
    duplicated: int
    exit_codes: str
    note: str = ""
    superseded: int = 0

    @property
    def lost(self) -> int:
        return self.sent - self.stored - self.dead_lettered - self.left_for_rerun - self.superseded


def summary_of(stderr: str) -> dict:
    """The JSON summary line an ingest prints on stderr."""
    return next(json.loads(line) for line in reversed(stderr.splitlines()) if line.startswith("{"))


class Job:
    """A running ``milco-os ingest`` (or another ``command``) whose standard error is read as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, command: str = "ingest") -> None:
        self.process = subprocess.Popen(milco_os_command(command, *args), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True)
        self.reader.start()

    def said(self, fragment: str) -> bool:
        return any(fragment in line for line in list(self.lines))

    def finish(self, timeout: float = 600) -> str:
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return "".join(self.lines)


def corpus(count: int, prefix: str = "doc") -> list[dict]:
    """``count`` short multilingual documents with distinct ids and texts."""
    return [{"id": f"{prefix}-{i}", "text": f"{MULTILINGUAL_SAMPLE[i % len(MULTILINGUAL_SAMPLE)]} #{i}", "n": i}
            for i in range(count)]


def write_jsonl(path: Path, documents: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in documents), encoding="utf-8")
    return path


@dataclass
class Audit:
    """What an index holds compared with what was sent."""

    stored: int
    missing: list[str]
    unexpected: list[str]
    duplicated: int
    wrong_vectors: list[str]

    def problems(self, count: int) -> tuple:
        """Empty when exactly ``count`` expected documents are stored, each once, with the right vector."""
        found = (self.stored, self.missing, self.unexpected, self.duplicated, self.wrong_vectors)
        return () if found == (count, [], [], 0, []) else found


def expected_fields(encoder: MilcoEncoder, documents: list[dict], prune: str = "none") -> dict[str, dict]:
    vectors = encoder.encode([d["text"] for d in documents], prune=prune)
    return {d["id"]: vector_fields(v, encoder.vocabulary) for d, v in zip(documents, vectors)}


def audit(client: OpenSearch, index: str, expected: dict[str, dict], rel: float = 1e-4) -> Audit:
    """Every stored document against the expected ids and vectors (exact ids, weights within ``rel``)."""
    client.indices.refresh(index=index)
    hits = list(helpers.scan(client, index=index, query={"query": {"match_all": {}}}, size=500))
    ids = [hit["_id"] for hit in hits]
    source_ids = [hit["_source"]["id"] for hit in hits if hit["_source"].get("id") is not None]
    duplicated = (len(ids) - len(set(ids))) + (len(source_ids) - len(set(source_ids)))
    wrong = []
    for hit in hits:
        want = expected.get(hit["_id"])
        if want is None:
            continue
        for field in (EN_FIELD, M_FIELD):
            got, wanted = hit["_source"].get(field) or {}, want.get(field) or {}
            if got.keys() != wanted.keys() or any(abs(got[k] - wanted[k]) > rel * max(1.0, abs(wanted[k]))
                                                  for k in wanted):
                wrong.append(hit["_id"])
                break
    return Audit(stored=len(set(ids) & set(expected)), missing=sorted(set(expected) - set(ids)),
                 unexpected=sorted(set(ids) - set(expected)), duplicated=duplicated, wrong_vectors=wrong)


class NodeHandle:
    """A dedicated node (see ``temporary_node``) that tests may stop and start again on the same port and data."""

    def __init__(self, node: SearchNode) -> None:
        self.node = node

    @property
    def url(self) -> str:
        return self.node.url

    def client(self, **options: object) -> OpenSearch:
        return OpenSearch(hosts=[self.url], timeout=60, **{**self.node.client_options(), **options})

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()


def wait_for_progress(done: Callable[[], int], job: subprocess.Popen, at_least: int, timeout: float = 240) -> int:
    """What ``done()`` reports once it reaches ``at_least`` while ``job`` runs (the job is then mid-run)."""
    seen: list[int] = []

    def reached() -> int | None:
        seen.append(done())
        return seen[-1] if seen[-1] >= at_least else None

    return wait_for(reached, timeout=timeout, interval=0.02, process=job,
                    what=f"the job to get to {at_least} before the fault is injected",
                    detail=lambda: f"it got to {seen[-1] if seen else 0}")


def checkpoint_field(path: Path, read: Callable[[dict], int]) -> Callable[[], int]:
    """A reader of a checkpoint file's progress (0 while it is absent or being replaced)."""

    def value() -> int:
        try:
            return read(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0

    return value


def ingested_lines(checkpoint: Path) -> Callable[[], int]:
    return checkpoint_field(checkpoint, lambda data: data["line"])


def reindexed_documents(checkpoint: Path) -> Callable[[], int]:
    return checkpoint_field(checkpoint, lambda data: sum(state["read"] for state in data["slices"].values()))


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        first = free_port()
        if first + count < 65536 and all(is_port_free(first + step) for step in range(count)):
            return first
    raise AssertionError(f"no {count} consecutive free ports found")


class DevCluster:
    """A cluster started by ``milco-os dev-cluster start --nodes N``, as an operator runs it; members can be
    SIGKILLed and brought back by starting the cluster again."""

    def __init__(self, first_port: int, nodes: int, heap: str) -> None:
        self.ports = list(range(first_port, first_port + nodes))
        self.heap = heap
        self.url = ""

    def start(self) -> str:
        started = run_cli("dev-cluster", "start", "--nodes", str(len(self.ports)), "--port", str(self.ports[0]),
                          "--heap", self.heap)
        assert started.returncode == 0, started.stderr
        self.url = started.stdout.strip().splitlines()[-1]
        return started.stderr

    def stop(self) -> None:
        for port in self.ports:
            run_cli("dev-cluster", "stop", "--port", str(port))
            shutil.rmtree(dev_cluster_node(port).runtime_dir, ignore_errors=True)

    def client(self, port: int | None = None) -> OpenSearch:
        hosts = [f"http://127.0.0.1:{port}"] if port else self.url.split(",")
        return OpenSearch(hosts=hosts, timeout=60)

    def manager_port(self) -> int:
        name = self.client().cat.cluster_manager(format="json")[0]["node"]
        return int(name.rsplit("-", 1)[1])

    def a_port_not_managing(self) -> int:
        manager = self.manager_port()
        return next(port for port in reversed(self.ports) if port != manager)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port`` (its whole process group), as a crash or the OOM killer would."""
        pid = dev_cluster_node(port).state().pid
        os.killpg(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid), timeout=30, interval=0.05,
                 what=f"the node on port {port} (pid {pid}) to die of SIGKILL")

    def wait_green(self, timeout: float = 180) -> None:
        health: dict = {}

        def green() -> bool:
            nonlocal health
            try:
                health = self.client().cluster.health()
            except Exception:
                health = {}
            return health.get("status") == "green" and health.get("number_of_nodes") == len(self.ports)

        wait_for(green, timeout=timeout, interval=0.5, what=f"the cluster to be green with {len(self.ports)} nodes",
                 detail=lambda: health)
