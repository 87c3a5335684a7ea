"""Session fixtures that give tests real services: an OpenSearch cluster and a tritonserver.

The cluster comes, in this order, from ``MILCO_OS_TEST_URL`` (an existing cluster),
from Docker via pytest-docker when a Docker engine answers, or from a node the suite
provisions from Maven Central and starts itself. Tritonserver always comes from the
nvidia-pytriton wheel. A service that cannot be had fails the tests that need it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch

from milco_os.model import MilcoEncoder
from milco_os.services.opensearch_ml_plugins import ML_DEFAULT_VERSION
from milco_os.services.search_node import SearchNode, is_green
from milco_os.services.temporary_node import temporary_node
from milco_os.services.triton_server import TritonServer
from milco_os.model.tiny import make_tiny_checkpoint

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_URL_ENV = "MILCO_OS_TEST_URL"
TEST_VERSION_ENV = "MILCO_OS_TEST_OPENSEARCH_VERSION"
SERVICE_REPORT: dict[str, str] = {}


def docker_engine_answers() -> bool:
    """True when a Docker engine (not just the client) is reachable."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=15).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="session")
def docker_compose_file() -> Path:
    return REPO_ROOT / "docker-compose.yml"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up -d opensearch"]


@pytest.fixture(scope="session")
def docker_opensearch_url(docker_services) -> str:
    url = f"http://127.0.0.1:{docker_services.port_for('opensearch', 9200)}"
    docker_services.wait_until_responsive(check=lambda: is_green(url), timeout=300, pause=2)
    return url


@pytest.fixture(scope="session")
def opensearch_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a real, green OpenSearch cluster for the whole session."""
    if os.environ.get(TEST_URL_ENV):
        url = os.environ[TEST_URL_ENV]
        source = f"existing cluster from {TEST_URL_ENV}"
    elif docker_engine_answers():
        url = request.getfixturevalue("docker_opensearch_url")
        source = "docker-compose.yml via pytest-docker"
    else:
        yield from provisioned_node()
        return
    record_opensearch(url, source)
    yield url


def provisioned_node() -> Iterator[str]:
    """Start a node from Maven Central artifacts on a free port; remove it afterwards."""
    with temporary_node(version=os.environ.get(TEST_VERSION_ENV, "")) as node:
        record_opensearch(node.url, "node provisioned from Maven Central by the test suite")
        yield node.url


def record_opensearch(url: str, source: str) -> None:
    client = OpenSearch(hosts=[url])
    info = client.info()
    client.close()
    SERVICE_REPORT["OpenSearch"] = f"{info['version']['number']} at {url} ({source})"


@pytest.fixture(scope="session")
def opensearch(opensearch_url: str) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[opensearch_url], timeout=60)
    yield client
    client.close()


@pytest.fixture
def index_name(opensearch: OpenSearch) -> Iterator[str]:
    """A fresh index name, deleted after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    opensearch.indices.delete(index=name, ignore_unavailable=True)


@pytest.fixture(scope="session")
def triton_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """A real tritonserver serving tests/triton_models on free loopback ports."""
    log_file = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    with TritonServer(REPO_ROOT / "tests" / "triton_models", log_file=log_file) as server:
        SERVICE_REPORT["Triton"] = f"{server.server_metadata()['version']} at {server.http_url} (HTTP), " \
                                   f"{server.grpc_url} (gRPC)"
        yield server


@pytest.fixture(scope="session")
def shared_ml_node() -> Iterator[SearchNode]:
    """A node of the default version with ml-commons and neural-search, shared by the modules that need one (each
    start costs about 40 s). Users keep to their own index, model and pipeline names."""
    with temporary_node(version=ML_DEFAULT_VERSION, ml=True) as node:
        yield node


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-milco"), seed=7)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint: Path) -> MilcoEncoder:
    return MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu")


def pytest_terminal_summary(terminalreporter) -> None:
    if SERVICE_REPORT:
        terminalreporter.section("real services used")
        for name, description in SERVICE_REPORT.items():
            terminalreporter.write_line(f"{name}: {description}")



# Elasticsearch nodes the suite provisions: 7.17 (rank_features via mapper-extras), 8.x and 9.x (sparse_vector).
ELASTICSEARCH_TARGETS = (("7.17.29", "rank_features"), ("8.19.21", "sparse_vector"), ("9.2.4", "sparse_vector"))


@pytest.fixture(scope="module", params=ELASTICSEARCH_TARGETS, ids=lambda target: f"es{target[0]}-{target[1]}")
def elasticsearch_target(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(URL, vector field type) of a real Elasticsearch node started for this module."""
    version, vector_type = request.param
    with temporary_node(engine="elasticsearch", version=version, heap="512m") as node:
        SERVICE_REPORT[f"Elasticsearch {version}"] = f"at {node.url} (node provisioned from Maven Central)"
        yield node.url, vector_type
