"""A cluster of several search nodes on loopback: each its own process, data folder and ports, one cluster."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from milco_os.errors import ServiceError
from milco_os.services.ports import free_port, require_free_port
from milco_os.services.search_node import (
    START_TIMEOUT_S,
    ClusterLayout,
    NodeSettings,
    NodeState,
    SearchNode,
    cluster_health,
)


def cluster_layout(name: str, http_ports: list[int], *, kept: dict[int, int] | None = None,
                   busy: set[int] | frozenset[int] = frozenset()) -> ClusterLayout:
    """The layout of a cluster whose nodes listen on ``http_ports``: the transport ports ``kept`` (by HTTP port),
    a free one for each other node. Every HTTP port must be free, but those of members running (``busy``)."""
    kept = kept or {}
    for port in http_ports:
        if port not in busy:
            require_free_port(port, f"node of cluster {name} (HTTP port {port})")
    return ClusterLayout(name, tuple((port, kept.get(port) or free_port()) for port in http_ports))


class LocalCluster:
    """``len(nodes)`` members of one cluster, started together and reachable at any member's URL."""

    def __init__(self, root: Path, settings: NodeSettings, layout: ClusterLayout) -> None:
        self.layout = layout
        self.nodes = [SearchNode(root / str(http), replace(settings, http_port=http, cluster=layout))
                      for http, _ in layout.members]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """Every member's URL, comma-separated: what ``--url`` takes, so that clients go on when a node leaves."""
        return ",".join(self.urls)

    def start(self, timeout: float = START_TIMEOUT_S, skip: set[int] | frozenset[int] = frozenset()
              ) -> list[NodeState]:
        """Launch every node (but those on the HTTP ports in ``skip``, running already), then wait until all
        have joined and every primary shard is assigned."""
        states = []
        launched = [node for node in self.nodes if node.settings.http_port not in skip]
        try:
            for node in launched:
                states.append(node.launch())
            first = launched[0]
            first.wait_ready(lambda: self.formed(first), timeout,
                             alive=lambda: all(node.launched_alive() for node in launched))
        except (ServiceError, OSError):
            for node in launched:
                node.stop()
            raise
        return states

    def formed(self, node: SearchNode) -> bool:
        """True when ``node`` sees every member and every primary shard assigned."""
        health = cluster_health(node.url, **node.client_options())
        return bool(health) and health.get("number_of_nodes") == len(self.nodes) and \
            health.get("status") in ("yellow", "green")

    def stop(self) -> list[bool]:
        """Stop every member; for each, whether it was running."""
        return [node.stop() for node in self.nodes]
