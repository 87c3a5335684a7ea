"""A local single-node OpenSearch (or Elasticsearch) cluster on loopback, started from a Maven-provisioned
distribution."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from opensearchpy import OpenSearch
from opensearchpy.exceptions import OpenSearchException

from milco_os.errors import ServiceError
from milco_os.paths import cache_dir
from milco_os.services import opensearch_security
from milco_os.services.distributions import DISTRIBUTIONS, Distribution
from milco_os.services.java import JavaHome
from milco_os.services.opensearch_security import BasicAuthUser
from milco_os.services.ports import LOOPBACK, free_port, require_free_port
from milco_os.services.processes import log_tail, pid_alive, terminate_process_group, wait_until
from milco_os.services.service_user import hand_over, service_user, services_root

STATE_FILE = "node.json"
CONSOLE_LOG = "console.log"
DEFAULT_HTTP_PORT = 9200
DEFAULT_HEAP = "1g"
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class ClusterLayout:
    """The members of a multi-node cluster on loopback: its name and each member's (HTTP, transport) ports."""

    name: str
    members: tuple[tuple[int, int], ...]

    @property
    def seed_hosts(self) -> list[str]:
        return [f"{LOOPBACK}:{transport}" for _, transport in self.members]

    @property
    def node_names(self) -> list[str]:
        return [node_name(http) for http, _ in self.members]

    def transport_port(self, http_port: int) -> int:
        return dict(self.members)[http_port]


def node_name(http_port: int) -> str:
    return f"milco-os-{http_port}"


@dataclass(frozen=True)
class NodeSettings:
    """What to run: the engine and version (default: the engine's), its HTTP port, heap size and extra
    ``<engine>.yml`` settings.

    With ``users`` (OpenSearch), the node runs the security plugin: https only, basic auth for these users.
    With ``ml`` (OpenSearch), it runs ml-commons and neural-search, allowed to call model servers on loopback.
    With ``cluster``, it is one member of that multi-node cluster; without, a single-node cluster.
    """

    engine: str = "opensearch"
    version: str = ""
    http_port: int = DEFAULT_HTTP_PORT
    heap: str = DEFAULT_HEAP
    extra: Mapping[str, object] = field(default_factory=dict)
    users: tuple[BasicAuthUser, ...] = ()
    ml: bool = False
    cluster: ClusterLayout | None = None

    def __post_init__(self) -> None:
        if self.users and self.ml:
            raise ServiceError("A node runs either the security plugin or the ml-commons plugins, not both.")
        if not self.version:
            default = self.distribution.plugin_set(self.plugins).default_version if self.plugins else ""
            object.__setattr__(self, "version", default or self.distribution.default_version)

    @property
    def distribution(self) -> Distribution:
        return DISTRIBUTIONS[self.engine]

    @property
    def secure(self) -> bool:
        return bool(self.users)

    @property
    def plugins(self) -> str:
        """The plugin set the node runs (a key of the distribution's ``plugin_sets``), or ``""``."""
        return "security" if self.users else "ml" if self.ml else ""

    @property
    def display_name(self) -> str:
        suffix = " with ml-commons and neural-search" if self.ml else ""
        return f"{self.distribution.display_name} {self.version}{suffix}"


@dataclass(frozen=True)
class NodeState:
    """What is running: saved next to the node so later commands can find and stop it."""

    pid: int
    version: str
    http_port: int
    transport_port: int
    url: str
    runtime_dir: str
    java_home: str
    started_at: float
    engine: str = "opensearch"
    cluster: str = ""

    def save(self, runtime_dir: Path) -> None:
        (runtime_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, runtime_dir: Path) -> NodeState | None:
        try:
            return cls(**json.loads((runtime_dir / STATE_FILE).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None


def node_yaml(settings: NodeSettings, transport_port: int, runtime_dir: Path,
              plugin_settings: Mapping[str, object] | None = None) -> str:
    """The engine's config file for a loopback-only node, alone or one of a cluster (JSON-quoted values are
    YAML)."""
    layout = settings.cluster
    discovery: dict[str, object] = {"discovery.type": "single-node"} if layout is None else {
        "discovery.seed_hosts": layout.seed_hosts,
        settings.distribution.initial_managers_setting: layout.node_names,
    }
    values: dict[str, object] = {
        "cluster.name": layout.name if layout else "milco-os-dev",
        "node.name": node_name(settings.http_port),
        "network.host": LOOPBACK,
        "http.port": settings.http_port,
        "transport.port": transport_port,
        **discovery,
        "path.data": str(runtime_dir / "data"),
        "path.logs": str(runtime_dir / "logs"),
        # A dev node on a nearly full disk should still allocate shards.
        "cluster.routing.allocation.disk.threshold_enabled": False,
    }
    values.update(settings.distribution.node_settings)
    values.update(plugin_settings or {})
    values.update(settings.extra)
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items())


def runtime_jvm_options(distribution_options: str, runtime_dir: Path) -> str:
    """The distribution's ``jvm.options`` with its paths relative to the install made absolute in ``runtime_dir``."""
    return (
        distribution_options.replace("file=logs/", f"file={runtime_dir}/logs/")
        .replace("-XX:ErrorFile=logs/", f"-XX:ErrorFile={runtime_dir}/logs/")
        .replace("-XX:HeapDumpPath=data", f"-XX:HeapDumpPath={runtime_dir}/data")
    )


def cluster_health(url: str, **client_options: object) -> dict | None:
    """The cluster health document, or ``None`` when the node does not answer."""
    client = OpenSearch(hosts=[url], timeout=5, max_retries=0, **client_options)
    try:
        return client.cluster.health()
    except OpenSearchException:
        return None
    finally:
        client.close()


def is_green(url: str, **client_options: object) -> bool:
    health = cluster_health(url, **client_options)
    return bool(health) and health.get("status") == "green"


def primaries_assigned(url: str, **client_options: object) -> bool:
    """Yellow or green: every primary shard is assigned (replicas cannot be on a single node)."""
    health = cluster_health(url, **client_options)
    return bool(health) and health.get("status") in ("yellow", "green")


def install_distribution(distribution: Distribution, version: str, *, plugins: str = "") -> Path:
    """The distribution's home for ``version`` (with the plugin set ``plugins``, if any); downloads cached in
    ``m2``."""
    return distribution.install(version, repository=cache_dir() / "m2", services=services_root(service_user()),
                                plugins=plugins)


class SearchNode:
    """One single-node OpenSearch or Elasticsearch cluster whose config, data and logs live in ``runtime_dir``."""

    def __init__(self, runtime_dir: Path, settings: NodeSettings) -> None:
        self.runtime_dir = runtime_dir
        self.settings = settings
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.secure else "http"
        return f"{scheme}://{LOOPBACK}:{self.settings.http_port}"

    @property
    def ca_certs(self) -> Path | None:
        """The CA that signed a secure node's certificate."""
        return self.runtime_dir / opensearch_security.CERTS / opensearch_security.CA_FILE if self.settings.secure \
            else None

    def client_options(self) -> dict[str, object]:
        """opensearch-py options to reach this node (as its first user, trusting its CA, when secure; with the
        admin's client certificate where the node requires one)."""
        if not self.settings.secure:
            return {}
        admin = self.settings.users[0]
        options: dict[str, object] = {"http_auth": (admin.name, admin.password), "ca_certs": str(self.ca_certs),
                                      "verify_certs": True}
        if self.settings.extra.get(opensearch_security.CLIENT_AUTH_MODE) == "REQUIRE":
            certs = self.runtime_dir / opensearch_security.CERTS
            options.update(client_cert=str(certs / "admin.pem"), client_key=str(certs / "admin-key.pem"))
        return options

    @property
    def console_log(self) -> Path:
        return self.runtime_dir / "logs" / CONSOLE_LOG

    def state(self) -> NodeState | None:
        return NodeState.load(self.runtime_dir)

    def start(self, timeout: float = START_TIMEOUT_S) -> NodeState:
        """Provision, launch and wait until every primary shard is assigned; the node outlives this process."""
        state = self.launch()
        self.wait_ready(lambda: primaries_assigned(self.url, **self.client_options()), timeout)
        return state

    def launch(self) -> NodeState:
        """Provision and launch the node without waiting for it (see ``wait_ready``)."""
        user = service_user()
        settings = self.settings
        distribution = settings.distribution
        java = distribution.java_for(settings.version)
        home = install_distribution(distribution, settings.version, plugins=settings.plugins)
        require_free_port(settings.http_port, f"{settings.display_name} node (HTTP port {settings.http_port})")
        transport_port = settings.cluster.transport_port(settings.http_port) if settings.cluster else free_port()
        self._prepare_runtime_dir(home, transport_port, java)
        hand_over(self.runtime_dir, user)
        env = {**os.environ, **distribution.environment(java, self.runtime_dir / "config", self.runtime_dir / "tmp",
                                                        settings.heap)}
        with self.console_log.open("ab") as console:
            process = subprocess.Popen(
                [str(home / distribution.binary)],
                cwd=self.runtime_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
            )
        state = NodeState(
            pid=process.pid,
            version=self.settings.version,
            http_port=self.settings.http_port,
            transport_port=transport_port,
            url=self.url,
            runtime_dir=str(self.runtime_dir),
            java_home=str(java.path),
            started_at=time.time(),
            engine=settings.engine,
            cluster=settings.cluster.name if settings.cluster else "",
        )
        state.save(self.runtime_dir)
        self._process = process
        return state

    def launched_alive(self) -> bool:
        """True while the process ``launch`` started runs."""
        return self._process is not None and self._process.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT_S,
                   alive: Callable[[], bool] | None = None) -> None:
        """Wait until ``ready`` holds while the launched node (or what ``alive`` checks) runs; stop the node when
        it does not come up."""
        try:
            wait_until(ready, timeout=timeout, what=f"{self.settings.display_name} node on {self.url}",
                       alive=alive or self.launched_alive, log=self.console_log)
        except ServiceError:
            self.stop()
            raise

    def stop(self, grace: float = STOP_GRACE_S) -> bool:
        """Stop the node if it runs; True when a running node was stopped."""
        state = self.state()
        if state is None:
            return False
        was_running = pid_alive(state.pid)
        if was_running:
            terminate_process_group(state.pid, grace=grace)
        if self._process is not None:
            self._process.poll()  # reaps a child that died (or was killed) before this stop
        (self.runtime_dir / STATE_FILE).unlink(missing_ok=True)
        return was_running

    def is_running(self) -> bool:
        state = self.state()
        return state is not None and pid_alive(state.pid)

    def tail(self) -> str:
        return log_tail(self.console_log)

    def _prepare_runtime_dir(self, home: Path, transport_port: int, java: JavaHome) -> None:
        config = self.runtime_dir / "config"
        if config.exists():
            shutil.rmtree(config)
        shutil.copytree(home / "config", config)
        for folder in ("data", "logs", "tmp"):
            (self.runtime_dir / folder).mkdir(parents=True, exist_ok=True)
        jvm_options = config / "jvm.options"
        jvm_options.write_text(runtime_jvm_options(jvm_options.read_text(), self.runtime_dir))
        extra: dict[str, object] = {}
        if self.settings.secure:
            extra = self._prepare_security(home, config, java)
        elif self.settings.plugins:
            extra = self.settings.distribution.plugin_set(self.settings.plugins).node_settings()
        (config / self.settings.distribution.config_file).write_text(
            node_yaml(self.settings, transport_port, self.runtime_dir, extra))

    def _prepare_security(self, home: Path, config: Path, java: JavaHome) -> dict[str, object]:
        """Certificates (made once per runtime dir, kept across restarts) and users; the settings for both."""
        certs = self.runtime_dir / opensearch_security.CERTS
        if not (certs / opensearch_security.CA_FILE).is_file():
            opensearch_security.make_certificates(certs)
        shutil.copytree(certs, config / opensearch_security.CERTS)
        (config / "opensearch-security" / "internal_users.yml").write_text(
            opensearch_security.internal_users_yaml(home, self.settings.users, java))
        return self.settings.distribution.plugin_set("security").node_settings()


def dev_clusters_root() -> Path:
    """Where ``milco-os dev-cluster`` keeps one folder per node, named by HTTP port."""
    return services_root(service_user()) / "dev-cluster"


def dev_cluster_node(http_port: int, settings: NodeSettings | None = None) -> SearchNode:
    settings = settings or NodeSettings(http_port=http_port)
    return SearchNode(dev_clusters_root() / str(http_port), settings)


def known_dev_clusters() -> list[NodeState]:
    """States of the dev clusters started by this tool (running or not)."""
    root = dev_clusters_root()
    if not root.is_dir():
        return []
    states = [NodeState.load(folder) for folder in sorted(root.iterdir()) if folder.is_dir()]
    return [state for state in states if state is not None]
