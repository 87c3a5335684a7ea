"""TLS, basic auth and what users see when they get the connection wrong, against a node with the security plugin.

Every failing path runs with distinct secrets (passwords, an API key, a password in the
URL); all bytes the tool writes (stdout, stderr, dead-letter and checkpoint files) are
searched for them and for the Authorization header they would make.
"""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.commands.connection import INSECURE_WARNING
from milco_os.model import MilcoEncoder
from milco_os.services.opensearch_security import CERTS, CLIENT_AUTH_MODE, SECURE_VERSION
from milco_os.services.ports import free_port
from milco_os.services.triton_server import TritonServer
from tests.commands import run_cli
from tests.reliability.conftest import ADMIN, READER, WRITER
from tests.reliability.harness import Job, NodeHandle, Row, audit, corpus, expected_fields, ingested_lines, \
    summary_of, wait_for_progress, write_jsonl
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

WRONG_PASSWORD = "Wr0ng-pa55word-that-must-never-show"
API_KEY = "ApiKey-secret-that-must-never-show"
URL_PASSWORD = "url-embedded-secret-that-must-never-show"


def basic_header(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_ingest_and_search_over_tls_with_basic_auth(secure_node: NodeHandle, tiny_checkpoint: Path,
                                                     tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    documents = corpus(40)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    env = {"MILCO_OS_PASSWORD": ADMIN.password}
    common = ("--url", secure_node.url, "--user", ADMIN.name, "--ca-certs", str(secure_node.node.ca_certs),
              "--index", "secured")

    ingested = run_cli("ingest", *common, "--model", str(tiny_checkpoint), str(source), env=env)
    found = run_cli("search", *common, "--model", str(tiny_checkpoint), "--format", "json", "Berlin", env=env)

    assert ingested.returncode == 0, ingested.stderr
    assert found.returncode == 0 and json.loads(found.stdout)["hits"], found.stderr
    assert secure_node.url.startswith("https://")
    result = audit(secure_node.client(), "secured", expected_fields(tiny_encoder, documents))
    assert not result.problems(len(documents))
    record(Row("security", "https with the cluster's CA (--ca-certs) and basic auth", "CLI", len(documents),
               result.stored, 0, 0, result.duplicated, "0", "OpenSearch security plugin, TLS on HTTP and transport"))


def test_insecure_is_explicit_and_warns(secure_node: NodeHandle, tiny_checkpoint: Path, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(3))
    result = run_cli("ingest", "--url", secure_node.url, "--user", ADMIN.name, "--insecure", "--index", "insecure",
                     "--model", str(tiny_checkpoint), str(source), env={"MILCO_OS_PASSWORD": ADMIN.password})
    assert result.returncode == 0, result.stderr
    assert INSECURE_WARNING in result.stderr


def failing_cases(node: NodeHandle) -> list[tuple[str, list[str], dict[str, str], int, str]]:
    """(case, connection arguments, environment, exit code, message fragment) of each connection failure."""
    ca = ["--ca-certs", str(node.node.ca_certs)]
    host = node.url.removeprefix("https://")
    unreachable = f"http://127.0.0.1:{free_port()}"
    return [
        ("wrong password", ["--url", node.url, "--user", ADMIN.name, *ca], {"MILCO_OS_PASSWORD": WRONG_PASSWORD},
         9, f"the cluster at {node.url} refused the credentials (HTTP 401, user '{ADMIN.name}')"),
        ("wrong password in the URL", ["--url", f"https://{ADMIN.name}:{URL_PASSWORD}@{host}", *ca], {},
         9, f"the cluster at {node.url} refused the credentials (HTTP 401"),
        ("API key the cluster does not know", ["--url", node.url, *ca], {"MILCO_OS_API_KEY": API_KEY},
         9, f"the cluster at {node.url} refused the credentials (HTTP 401"),
        ("read-only user writes", ["--url", node.url, "--user", READER.name, *ca],
         {"MILCO_OS_PASSWORD": READER.password}, 9, f"the cluster at {node.url} denied the request (HTTP 403)"),
        ("TLS verification failure (CA not given)", ["--url", node.url, "--user", ADMIN.name],
         {"MILCO_OS_PASSWORD": ADMIN.password}, 10, f"TLS verification of {node.url} failed"),
        ("unreachable URL", ["--url", unreachable, "--user", ADMIN.name], {"MILCO_OS_PASSWORD": ADMIN.password},
         4, f"cannot reach the cluster at {unreachable}"),
    ]


def test_connection_failures_are_one_clear_line_and_never_leak_a_secret(
        secure_node: NodeHandle, tiny_checkpoint: Path, tmp_path: Path, record) -> None:
    documents = corpus(10)
    source = write_jsonl(tmp_path / "docs.jsonl", documents)
    secrets = [ADMIN.password, READER.password, WRONG_PASSWORD, API_KEY, URL_PASSWORD,
               basic_header(ADMIN.name, ADMIN.password), basic_header(ADMIN.name, WRONG_PASSWORD),
               basic_header(READER.name, READER.password), basic_header(ADMIN.name, URL_PASSWORD)]
    written: list[str] = []
    for number, (case, connection, env, code, fragment) in enumerate(failing_cases(secure_node)):
        dead = tmp_path / f"dead-{number}.jsonl"
        for command in (["ingest", "--index", "refused", "--model", str(tiny_checkpoint), "--dead-letter", str(dead),
                         str(source)], ["search", "--index", "refused", "--model", str(tiny_checkpoint), "Berlin"]):
            if command[0] == "search" and "read-only" in case:
                continue  # reading is what that user may do
            result = run_cli(command[0], *connection, *command[1:], env=env, timeout=300)
            written += [result.stdout, result.stderr]
            assert result.returncode == code, (case, command[0], result.stderr)
            error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
            assert len(error_lines) == 1 and fragment in error_lines[0], (case, result.stderr)
            assert "Traceback" not in result.stderr, (case, result.stderr)
        record(Row("security", case, "CLI", len(documents), 0, 0, len(documents), 0, str(code),
                   "refused before writing; the error names the host"))
    written += [path.read_text(encoding="utf-8") for path in tmp_path.glob("*") if path.is_file()]
    output = "\n".join(written)
    leaked = [secret for secret in secrets if secret in output]
    assert not leaked, f"{len(leaked)} secret(s) appear in the tool's output"
    assert secure_node.client().indices.exists(index="refused") is False


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    addresses = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                raw = bytes.fromhex(address)
                # /proc prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                addresses.add(socket.inet_ntop(family, words))
    return addresses


def test_services_started_by_the_tool_listen_on_loopback_only(secure_node: NodeHandle,
                                                              triton_server: TritonServer) -> None:
    state = secure_node.node.state()
    ports = {"OpenSearch HTTP": state.http_port, "OpenSearch transport": state.transport_port,
             "Triton HTTP": triton_server.http_port, "Triton gRPC": triton_server.grpc_port,
             "Triton metrics": triton_server.metrics_port}
    seen = {name: listening_addresses(port) for name, port in ports.items()}
    assert all(seen.values()), f"some service does not listen where expected: {seen}"
    assert all(addresses <= {"127.0.0.1", "::ffff:127.0.0.1"} for addresses in seen.values()), seen


def security_admin(node: NodeHandle) -> OpenSearch:
    """A client with the node's admin certificate: the one that may change roles through the security API."""
    certs = node.node.runtime_dir / CERTS
    return OpenSearch(hosts=[node.url], ca_certs=str(node.node.ca_certs), client_cert=str(certs / "admin.pem"),
                      client_key=str(certs / "admin-key.pem"), timeout=60)


def set_writer_access(admin: OpenSearch, granted: bool) -> None:
    """Map WRITER to all_access, or take the mapping away (then every request of WRITER's is denied with 403)."""
    path = "/_plugins/_security/api/rolesmapping/all_access"
    mapping = admin.transport.perform_request("GET", path)["all_access"]
    users = [user for user in mapping.get("users", []) if user != WRITER.name] + ([WRITER.name] if granted else [])
    admin.transport.perform_request("PUT", path, body={
        "backend_roles": mapping.get("backend_roles", []), "hosts": mapping.get("hosts", []), "users": users})


def test_a_permission_taken_away_mid_job_is_waited_for_and_nothing_dead_lettered(
        secure_node: NodeHandle, tiny_checkpoint: Path, tiny_encoder: MilcoEncoder, tmp_path: Path, record) -> None:
    admin, index, count = security_admin(secure_node), "secured-revoked", 3000
    set_writer_access(admin, True)
    secure_node.client().indices.delete(index=index, ignore_unavailable=True)
    documents = corpus(count)
    dead = tmp_path / "dead.jsonl"
    job = Job("--url", secure_node.url, "--user", WRITER.name, "--ca-certs", str(secure_node.node.ca_certs),
              "--index", index, "--model", str(tiny_checkpoint), "--batch-size", "8", "--bulk-concurrency", "1",
              "--unavailable-timeout", "180",
              "--dead-letter", str(dead), str(write_jsonl(tmp_path / "docs.jsonl", documents)),
              env={"MILCO_OS_PASSWORD": WRITER.password})
    try:
        line = wait_for_progress(ingested_lines(dead.with_suffix(".checkpoint.json")), job.process, count // 10)
        set_writer_access(admin, False)
        wait_for(lambda: job.said("the index refuses writes"), timeout=120, process=job.process,
                 what="the job to meet the 403 and say it waits")
    finally:
        set_writer_access(admin, True)
    stderr = job.finish()

    assert job.process.returncode == 0, stderr
    waits = [text for text in stderr.splitlines() if "the index refuses writes" in text]
    assert waits and ("403" in waits[0] or "security_exception" in waits[0]), stderr
    assert WRITER.password not in stderr
    assert not dead.exists(), "nothing may be dead-lettered for a missing permission"
    summary = summary_of(stderr)
    assert summary["failed"] == 0 and summary["index_fault_retries"] > 0
    result = audit(secure_node.client(), index, expected_fields(tiny_encoder, documents))
    assert not result.problems(count)
    record(Row("index fault", "write permission taken away mid-ingest (403), given back within "
               "--unavailable-timeout", "CLI", count, result.stored, 0, 0, result.duplicated, "0",
               f"taken away after line {line}; {summary['index_fault_retries']} documents sent again"))


def test_mutual_tls_with_a_client_certificate(own_node, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A node that requires client certificates: refused without one, in one line naming the cause; with
    --client-cert and --client-key every document is written and found."""
    node = own_node(version=SECURE_VERSION, users=(ADMIN,),
                    extra={CLIENT_AUTH_MODE: "REQUIRE"})
    certs = node.node.runtime_dir / CERTS
    source = write_jsonl(tmp_path / "docs.jsonl", corpus(12))
    env = {"MILCO_OS_PASSWORD": ADMIN.password}
    common = ("--url", node.url, "--user", ADMIN.name, "--ca-certs", str(node.node.ca_certs), "--index", "mtls")
    refused = run_cli("ingest", *common, "--model", str(tiny_checkpoint), str(source), env=env)
    assert refused.returncode == 10, refused.stderr
    assert "client certificate" in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2
    client = ("--client-cert", str(certs / "admin.pem"), "--client-key", str(certs / "admin-key.pem"))
    ingested = run_cli("ingest", *common, *client, "--model", str(tiny_checkpoint), str(source), env=env)
    found = run_cli("search", *common, *client, "--model", str(tiny_checkpoint), "--format", "json", "Berlin",
                    env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert found.returncode == 0 and json.loads(found.stdout)["hits"], found.stderr
    assert ADMIN.password not in ingested.stdout + ingested.stderr + found.stdout + found.stderr
