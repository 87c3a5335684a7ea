from pathlib import Path

import pytest

from milco_os.services import temporary_node as module
from milco_os.services.search_node import NodeSettings


class FakeNode:
    """Records the lifecycle instead of running a JVM."""

    events: list[str] = []

    def __init__(self, runtime_dir: Path, settings: NodeSettings) -> None:
        self.runtime_dir = runtime_dir
        self.settings = settings

    def start(self) -> None:
        self.runtime_dir.mkdir(parents=True)
        self.events.append("start")

    def stop(self) -> bool:
        self.events.append("stop")
        return True


@pytest.fixture
def fake_nodes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setattr(module, "SearchNode", FakeNode)
    monkeypatch.setattr(module, "services_root", lambda user: tmp_path)
    FakeNode.events = []
    return FakeNode.events


def test_node_is_started_stopped_and_removed(fake_nodes: list[str], tmp_path: Path) -> None:
    with module.temporary_node(engine="elasticsearch", version="7.17.29", heap="512m",
                               extra={"a.b": 1}) as node:
        assert node.runtime_dir.parent == tmp_path / module.TEMPORARY_NODES
        assert node.runtime_dir.name.startswith(f"{node.settings.http_port}-")
        assert node.settings == NodeSettings(engine="elasticsearch", version="7.17.29",
                                             http_port=node.settings.http_port, heap="512m", extra={"a.b": 1})
    assert fake_nodes == ["start", "stop"]
    assert not node.runtime_dir.exists()


def test_node_is_removed_when_the_block_fails(fake_nodes: list[str]) -> None:
    with pytest.raises(RuntimeError), module.temporary_node() as node:
        raise RuntimeError("boom")
    assert fake_nodes == ["start", "stop"]
    assert not node.runtime_dir.exists()
