"""``milco-os dev-cluster``: a local single-node OpenSearch for trying milco-os and for tests."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from milco_os.services import opensearch_security
from milco_os.services.distributions import DISTRIBUTIONS, ELASTICSEARCH, ENGINES, OPENSEARCH
from milco_os.services.elasticsearch_modules import RANK_FEATURES_VERSION
from milco_os.services.local_cluster import LocalCluster, cluster_layout
from milco_os.services.opensearch_ml_plugins import ML_VERSIONS
from milco_os.services.search_node import (
    DEFAULT_HEAP,
    DEFAULT_HTTP_PORT,
    START_TIMEOUT_S,
    NodeSettings,
    cluster_health,
    dev_cluster_node,
    dev_clusters_root,
    install_distribution,
    known_dev_clusters,
)
from milco_os.services.processes import pid_alive


def parse_settings(pairs: tuple[str, ...]) -> dict[str, str]:
    """``key=value`` strings as a dict, with a usage error naming a malformed one."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"'{pair}' is not of the form key=value", param_hint="--setting")
        settings[key.strip()] = value.strip()
    return settings


def chosen_plugins(secure: bool, ml: bool) -> str:
    if secure and ml:
        raise click.UsageError("--secure and --ml are separate node flavours: choose one")
    return "security" if secure else "ml" if ml else ""


def chosen_version(version: str | None, plugins: str, engine: str) -> str:
    """The version asked for, else the engine's default (with a plugin set: the one it is served for)."""
    distribution = DISTRIBUTIONS[engine]
    if not plugins:
        return version or distribution.default_version
    if plugins not in distribution.plugin_sets:
        raise click.UsageError(f"--{'secure' if plugins == 'security' else plugins} installs OpenSearch plugins: "
                               "use it with --engine opensearch")
    plugin_set = distribution.plugin_sets[plugins]
    if version and plugin_set.versions and version not in plugin_set.versions:
        raise click.UsageError(f"the {plugins} plugins are served on Maven Central for OpenSearch "
                               f"{' and '.join(plugin_set.versions)} only, not {version}")
    return version or plugin_set.default_version


version_option = click.option(
    "--version", "version", default=None,
    help=f"Engine version [default: OpenSearch {OPENSEARCH.default_version} ({opensearch_security.SECURE_VERSION} "
         f"with --secure, {' or '.join(ML_VERSIONS)} with --ml), Elasticsearch {ELASTICSEARCH.default_version}]; "
         "OpenSearch 3.x and Elasticsearch 9.x need Java 21+.")
engine_option = click.option(
    "--engine", type=click.Choice(ENGINES), default="opensearch", show_default=True,
    help=f"Elasticsearch nodes are the integ-test build: rank_features on 7.x "
         f"(e.g. {RANK_FEATURES_VERSION}), sparse_vector from 8.11, no ingest processors.")
secure_option = click.option(
    "--secure", is_flag=True, help="Security plugin: https with a generated CA, basic auth (needs the version's "
                                   "opensearch-security release on Maven Central).")
ml_option = click.option(
    "--ml", is_flag=True, help="ml-commons and neural-search (with job-scheduler and k-NN): the cluster can encode "
                               "with MILCO served by Triton (see 'milco-os opensearch-ml').")


@click.group("dev-cluster")
def dev_cluster() -> None:
    """Run a local OpenSearch or Elasticsearch node or cluster (loopback only; security off unless --secure)
    provisioned from Maven Central."""


@dev_cluster.command("fetch")
@engine_option
@version_option
@secure_option
@ml_option
def fetch(engine: str, version: str | None, secure: bool, ml: bool) -> None:
    """Download and assemble the distribution without starting it."""
    plugins = chosen_plugins(secure, ml)
    version = chosen_version(version, plugins, engine)
    click.echo(str(install_distribution(DISTRIBUTIONS[engine], version, plugins=plugins)))


@dev_cluster.command("start")
@engine_option
@version_option
@secure_option
@ml_option
@click.option("--user", default="admin", show_default=True, help="With --secure: the basic-auth user to create.")
@click.option("--password", envvar="MILCO_OS_PASSWORD", default=None,
              help="With --secure: that user's password (prefer MILCO_OS_PASSWORD); never printed.")
@click.option("--port", default=DEFAULT_HTTP_PORT, show_default=True, type=click.IntRange(1, 65535),
              help="HTTP port on 127.0.0.1 (with --nodes N: of the first node; the others take the next ports).")
@click.option("--nodes", default=1, show_default=True, type=click.IntRange(1, 9),
              help="Nodes of one cluster, each its own process, data folder and ports (all of them "
                   "cluster-manager-eligible data nodes).")
@click.option("--heap", default=DEFAULT_HEAP, show_default=True, help="JVM heap (-Xms/-Xmx).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Extra opensearch.yml setting; repeatable.")
@click.option("--timeout", default=START_TIMEOUT_S, show_default=True, type=float,
              help="Seconds to wait for the node's shards.")
def start(engine: str, version: str | None, secure: bool, ml: bool, user: str, password: str | None, port: int,
          nodes: int, heap: str, settings: tuple[str, ...], timeout: float) -> None:
    """Start a node (or a cluster of --nodes) in the background, wait until its primary shards are assigned and
    print its URL (the nodes' URLs, comma-separated)."""
    if secure and not password:
        raise click.UsageError("--secure needs a password for the user: set MILCO_OS_PASSWORD (or --password)")
    if secure and nodes > 1:
        raise click.UsageError("--secure runs a single node (its certificates are the node's own): drop --nodes")
    version = chosen_version(version, chosen_plugins(secure, ml), engine)
    users = (opensearch_security.BasicAuthUser(user, password),) if secure else ()
    node_settings = NodeSettings(engine=engine, version=version, http_port=port, heap=heap,
                                 extra=parse_settings(settings), users=users, ml=ml)
    if nodes > 1:
        start_cluster(node_settings, nodes, timeout)
        return
    node = dev_cluster_node(port, node_settings)
    state = node.state()
    if state is not None and pid_alive(state.pid):
        click.echo(f"{state.engine} {state.version} already runs at {state.url} (pid {state.pid}).", err=True)
        click.echo(state.url)
        return
    click.echo(f"Starting {node.settings.display_name} on 127.0.0.1:{port} ...", err=True)
    state = node.start(timeout=timeout)
    click.echo(f"{node.settings.display_name} is up at {state.url} (pid {state.pid}, logs in {node.console_log}).",
               err=True)
    if secure:
        click.echo(f"TLS and basic auth are on: use --user {user} --ca-certs {node.ca_certs}", err=True)
    click.echo(state.url)


def start_cluster(settings: NodeSettings, nodes: int, timeout: float) -> None:
    """Start ``nodes`` members of one cluster on consecutive HTTP ports from ``settings.http_port``; members of
    that cluster already running are kept, stopped or crashed ones start again on their data."""
    ports = list(range(settings.http_port, settings.http_port + nodes))
    name = f"milco-os-dev-{settings.http_port}"
    states = {state.http_port: state for state in known_dev_clusters() if state.http_port in ports}
    running = {port for port, state in states.items() if pid_alive(state.pid)}
    strangers = sorted(port for port in running if states[port].cluster != name)
    if strangers:
        raise click.UsageError(f"a dev node of another cluster runs on port {strangers[0]}: stop it first "
                               "('milco-os dev-cluster stop') or choose another --port")
    kept = {port: states[port].transport_port for port in ports if port in states}
    cluster = LocalCluster(dev_clusters_root(), settings, cluster_layout(name, ports, kept=kept, busy=running))
    if running == set(ports):
        click.echo(f"Cluster {name} already runs: {nodes} nodes.", err=True)
    else:
        click.echo(f"Starting {nodes - len(running)} of {nodes} {settings.display_name} nodes of cluster {name} "
                   f"on 127.0.0.1:{ports[0]}-{ports[-1]} ...", err=True)
        cluster.start(timeout=timeout, skip=running)
        click.echo(f"Cluster {name} is up: {nodes} nodes (logs in {dev_clusters_root()}/<port>/logs).", err=True)
    click.echo(cluster.url)


@dev_cluster.command("status")
def status() -> None:
    """List the nodes started by this tool; exit code 1 when none is running."""
    states = known_dev_clusters()
    table = Table()
    # The URL and health stay whole in a narrow console (or a pipe); the other columns may wrap.
    table.add_column("url", no_wrap=True, min_width=max((len(state.url) for state in states), default=3))
    for name in ("cluster", "engine", "version", "pid", "process"):
        table.add_column(name)
    table.add_column("health", no_wrap=True, min_width=6)
    table.add_column("nodes", no_wrap=True, min_width=5)
    running = 0
    for state in states:
        alive = pid_alive(state.pid)
        health = cluster_health(state.url) if alive else None
        running += alive
        table.add_row(state.url, state.cluster or "-", state.engine, state.version, str(state.pid),
                      "running" if alive else "gone", health["status"] if health else "-",
                      str(health["number_of_nodes"]) if health else "-")
    if not states:
        click.echo("No dev cluster is running.")
    else:
        console = Console()
        Console(width=max(console.width, 160) if not console.is_terminal else None).print(table)
    if not running:
        raise SystemExit(1)


@dev_cluster.command("stop")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Stop only the node on this HTTP port (default: every node this tool started).")
def stop(port: int | None) -> None:
    """Stop dev cluster nodes (SIGTERM, then SIGKILL after 30 s)."""
    ports = [port] if port is not None else [state.http_port for state in known_dev_clusters()]
    stopped = [p for p in ports if dev_cluster_node(p).stop()]
    for p in ports:
        click.echo(f"127.0.0.1:{p}: {'stopped' if p in stopped else 'was not running'}")
    if not ports:
        click.echo("No dev cluster is running.")
