"""Search nodes and clusters for the length of a ``with`` block: on free ports, in their own folders, removed
afterwards."""

from __future__ import annotations

import shutil
import uuid
from contextlib import contextmanager
from typing import Iterator, Mapping

from milco_os.services.local_cluster import LocalCluster, cluster_layout
from milco_os.services.opensearch_security import BasicAuthUser
from milco_os.services.ports import free_port
from milco_os.services.search_node import DEFAULT_HEAP, NodeSettings, SearchNode
from milco_os.services.service_user import service_user, services_root

TEMPORARY_NODES = "temporary-nodes"


@contextmanager
def temporary_node(engine: str = "opensearch", version: str = "", heap: str = DEFAULT_HEAP,
                   extra: Mapping[str, object] | None = None,
                   users: tuple[BasicAuthUser, ...] = (), ml: bool = False) -> Iterator[SearchNode]:
    """A started node (the engine's default version unless ``version``); stopped and deleted on exit.

    Inside the block the node may be stopped and started again: it keeps its port, data and certificates.
    """
    port = free_port()
    settings = NodeSettings(engine=engine, version=version, http_port=port, heap=heap, extra=extra or {},
                            users=users, ml=ml)
    runtime_dir = services_root(service_user()) / TEMPORARY_NODES / f"{port}-{uuid.uuid4().hex[:8]}"
    node = SearchNode(runtime_dir, settings)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(runtime_dir, ignore_errors=True)


@contextmanager
def temporary_cluster(nodes: int, engine: str = "opensearch", version: str = "", heap: str = DEFAULT_HEAP,
                      extra: Mapping[str, object] | None = None) -> Iterator[LocalCluster]:
    """A started cluster of ``nodes`` members on free ports; stopped and deleted on exit.

    Inside the block any member may be stopped (or killed) and started again: it keeps its ports and data.
    """
    ports = [free_port() for _ in range(nodes)]
    name = f"milco-os-test-{ports[0]}-{uuid.uuid4().hex[:8]}"
    root = services_root(service_user()) / TEMPORARY_NODES / name
    settings = NodeSettings(engine=engine, version=version, heap=heap, extra=extra or {})
    cluster = LocalCluster(root, settings, cluster_layout(name, ports))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
