"""``milco-os dev-cluster``: a local single-node OpenSearch for trying milco-os and for tests."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from milco_os.services import opensearch_security
from milco_os.services.distributions import DISTRIBUTIONS, ELASTICSEARCH, ENGINES, OPENSEARCH
from milco_os.services.elasticsearch_modules import RANK_FEATURES_VERSION
from milco_os.services.opensearch_ml_plugins import ML_VERSIONS
from milco_os.services.search_node import (
    DEFAULT_HEAP,
    DEFAULT_HTTP_PORT,
    START_TIMEOUT_S,
    NodeSettings,
    cluster_health,
    dev_cluster_node,
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
    """Run a local OpenSearch or Elasticsearch node (loopback only; security off unless --secure) provisioned from
    Maven Central."""


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
              help="HTTP port on 127.0.0.1.")
@click.option("--heap", default=DEFAULT_HEAP, show_default=True, help="JVM heap (-Xms/-Xmx).")
@click.option("--setting", "settings", multiple=True, metavar="KEY=VALUE",
              help="Extra opensearch.yml setting; repeatable.")
@click.option("--timeout", default=START_TIMEOUT_S, show_default=True, type=float,
              help="Seconds to wait for the node's shards.")
def start(engine: str, version: str | None, secure: bool, ml: bool, user: str, password: str | None, port: int,
          heap: str, settings: tuple[str, ...], timeout: float) -> None:
    """Start a node in the background, wait until its primary shards are assigned and print its URL."""
    if secure and not password:
        raise click.UsageError("--secure needs a password for the user: set MILCO_OS_PASSWORD (or --password)")
    version = chosen_version(version, chosen_plugins(secure, ml), engine)
    users = (opensearch_security.BasicAuthUser(user, password),) if secure else ()
    node = dev_cluster_node(port, NodeSettings(engine=engine, version=version, http_port=port, heap=heap,
                                               extra=parse_settings(settings), users=users, ml=ml))
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


@dev_cluster.command("status")
def status() -> None:
    """List the nodes started by this tool; exit code 1 when none is running."""
    states = known_dev_clusters()
    table = Table("url", "engine", "version", "pid", "process", "health")
    running = 0
    for state in states:
        alive = pid_alive(state.pid)
        health = cluster_health(state.url) if alive else None
        running += alive
        table.add_row(state.url, state.engine, state.version, str(state.pid), "running" if alive else "gone",
                      health["status"] if health else "-")
    if not states:
        click.echo("No dev cluster is running.")
    else:
        Console().print(table)
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
