"""``milco-os dev-cluster`` end to end: a real node started, answered, listed and stopped."""

from __future__ import annotations

import json
import socket
import urllib.request
from functools import partial

import pytest
from opensearchpy import OpenSearch

from milco_os.services.ports import free_port, is_port_free
from tests.commands import run_cli

pytestmark = pytest.mark.integration


milco_os = partial(run_cli, timeout=300)  # a call may give its own timeout


def test_start_status_stop_round_trip() -> None:
    port = free_port()
    started = milco_os("dev-cluster", "start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url, timeout=10) as response:
            info = json.load(response)
        assert info["version"]["distribution"] == "opensearch"
        assert f"is up at {url}" in started.stderr

        again = milco_os("dev-cluster", "start", "--port", str(port))
        assert again.returncode == 0 and "already runs" in again.stderr

        status = milco_os("dev-cluster", "status")
        assert status.returncode == 0
        assert url in status.stdout and "green" in status.stdout
    finally:
        stopped = milco_os("dev-cluster", "stop", "--port", str(port))
    assert stopped.returncode == 0
    assert f"127.0.0.1:{port}: stopped" in stopped.stdout
    assert is_port_free(port)
    assert url not in milco_os("dev-cluster", "status").stdout


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = milco_os("dev-cluster", "start", "--port", str(port))
    assert result.returncode == 4
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_node_that_cannot_start_reports_its_log_tail() -> None:
    port = free_port()
    result = milco_os("dev-cluster", "start", "--port", str(port), "--setting", "no.such.setting=1", timeout=240)
    assert result.returncode == 4
    assert "exited before it became ready" in result.stderr
    assert "unknown setting [no.such.setting]" in result.stderr
    assert is_port_free(port)


def test_malformed_setting_is_a_usage_error() -> None:
    result = milco_os("dev-cluster", "start", "--setting", "novalue")
    assert result.returncode == 2
    assert "'novalue' is not of the form key=value" in result.stderr


def test_version_the_registry_does_not_serve_is_a_clear_error() -> None:
    result = milco_os("dev-cluster", "fetch", "--version", "0.0.1")
    assert result.returncode == 4
    assert "Maven could not provide org.opensearch.distribution.integ-test-zip:opensearch:0.0.1:zip" in result.stderr


OPENSEARCH_3 = "3.8.0"


def test_opensearch_3_node_serves_rank_features() -> None:
    port = free_port()
    started = milco_os("dev-cluster", "start", "--version", OPENSEARCH_3, "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        client = OpenSearch(hosts=[started.stdout.strip()])
        assert client.info()["version"]["number"] == OPENSEARCH_3
        client.indices.create(index="rf", body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {"properties": {"terms": {"type": "rank_features"}}},
        })
        client.index(index="rf", id="1", body={"terms": {"a": 2.5, "b": 1.0}}, refresh=True)
        hits = client.search(index="rf", body={"query": {"bool": {"should": [
            {"rank_feature": {"field": "terms.a", "boost": 2.0, "linear": {}}},
            {"rank_feature": {"field": "terms.b", "boost": 3.0, "linear": {}}},
        ]}}})["hits"]["hits"]
        assert [(hit["_id"], hit["_score"]) for hit in hits] == [("1", 8.0)]
        client.close()
    finally:
        milco_os("dev-cluster", "stop", "--port", str(port))
    assert is_port_free(port)
