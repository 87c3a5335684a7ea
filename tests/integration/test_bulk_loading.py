"""A load into a SEISMIC index on a real neural-search node holds the field's loading settings for the job and
puts the index's own values back afterwards, also after a job that was killed while holding them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch

from milco_os.index.handle import IndexHandle, open_index
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.seismic_parameters import SeismicIndex
from milco_os.index.setup import ensure_index
from milco_os.index.vector_fields import LOADING_SETTINGS
from milco_os.model import MilcoEncoder
from milco_os.pipeline.bulk_loading import LOADING_META, bulk_loading, hold
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.sources import DictSource
from milco_os.sample_corpus import sample_dir
from milco_os.services.search_node import SearchNode
from tests.commands import run_cli

pytestmark = pytest.mark.integration

PRUNE = "topk:32"
OWN = {"index.refresh_interval": "5s"}  # an explicit value of the index's own, which the load must put back
WATCHED = [f"index.{key}" for key in LOADING_SETTINGS]


@pytest.fixture(scope="module")
def node(shared_ml_node: SearchNode) -> Iterator[OpenSearch]:
    client = OpenSearch(hosts=[shared_ml_node.url], timeout=120)
    yield client
    client.close()


def documents(count: int = 60) -> list[dict]:
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:count]
    return [{"id": doc["_id"], "text": doc["text"]} for doc in map(json.loads, lines)]


def seismic_index(client: OpenSearch, name: str, encoder: MilcoEncoder) -> IndexHandle:
    client.indices.delete(index=name, ignore_unavailable=True)
    parameters = measured_ceilings(encoder, [doc["text"] for doc in documents()], SeismicIndex(), PRUNE)
    handle, _ = ensure_index(client, name, replicas=0, vector_type="seismic", parameters=parameters)
    client.indices.put_settings(index=name, body=OWN)
    return handle


def watched_settings(client: OpenSearch, name: str) -> dict[str, str]:
    settings = client.indices.get_settings(index=name, flat_settings=True)[name]["settings"]
    return {key: settings[key] for key in WATCHED if key in settings}


def milco_meta(client: OpenSearch, name: str) -> dict:
    return client.indices.get_mapping(index=name)[name]["mappings"]["_meta"]["milco_os"]


def test_a_load_holds_the_loading_settings_and_puts_the_indexs_own_back(node: OpenSearch,
                                                                        tiny_encoder: MilcoEncoder) -> None:
    name = "loading-seismic"
    handle = seismic_index(node, name, tiny_encoder)
    recorded_before = milco_meta(node, name)
    seen: dict = {}

    def source() -> Iterator[dict]:
        for number, doc in enumerate(documents()):
            if number == 30:  # the load is under way: batches before this one are written
                seen.update(settings=watched_settings(node, name), meta=milco_meta(node, name))
            yield doc

    with bulk_loading(handle):
        summary = Ingestor(handle, tiny_encoder, IngestOptions(prune=PRUNE, batch_size=10),
                           DeadLetters(None)).run(DictSource(source()))
    assert summary.written == 60, summary
    assert seen["settings"] == {f"index.{key}": value for key, value in LOADING_SETTINGS.items()}
    assert seen["meta"][LOADING_META] == {"refresh_interval": "5s"}
    assert watched_settings(node, name) == OWN
    assert milco_meta(node, name) == recorded_before  # the record is gone, the rest (the model) kept
    node.indices.delete(index=name)


def test_the_job_after_one_killed_while_loading_puts_the_indexs_own_back(node: OpenSearch,
                                                                         tiny_encoder: MilcoEncoder) -> None:
    name = "killed-loading-seismic"
    handle = seismic_index(node, name, tiny_encoder)
    hold(handle.engine, name, LOADING_SETTINGS)  # a job that then died without putting anything back
    assert watched_settings(node, name)["index.refresh_interval"] == "1s"
    with bulk_loading(open_index(node, name)):
        assert milco_meta(node, name)[LOADING_META] == {"refresh_interval": "5s"}  # not the loading values
    assert watched_settings(node, name) == OWN
    assert LOADING_META not in milco_meta(node, name)
    node.indices.delete(index=name)


def test_a_failed_load_puts_the_indexs_own_back(node: OpenSearch, tiny_encoder: MilcoEncoder) -> None:
    name = "failed-loading-seismic"
    handle = seismic_index(node, name, tiny_encoder)
    with pytest.raises(RuntimeError, match="the source broke"):
        with bulk_loading(handle):
            raise RuntimeError("the source broke")
    assert watched_settings(node, name) == OWN
    assert LOADING_META not in milco_meta(node, name)
    node.indices.delete(index=name)


def test_a_rank_features_load_leaves_the_settings_alone(opensearch: OpenSearch) -> None:
    name = "loading-plain"
    opensearch.indices.delete(index=name, ignore_unavailable=True)
    handle, _ = ensure_index(opensearch, name, replicas=0)
    before = opensearch.indices.get_settings(index=name, flat_settings=True)[name]["settings"]
    with bulk_loading(handle):
        during = opensearch.indices.get_settings(index=name, flat_settings=True)[name]["settings"]
    assert during == before and LOADING_META not in milco_meta(opensearch, name)
    opensearch.indices.delete(index=name)


def test_a_reindex_in_shares_puts_the_settings_back_once_the_last_share_is_done(
        node: OpenSearch, shared_ml_node: SearchNode, tiny_encoder: MilcoEncoder, tiny_checkpoint: Path,
        tmp_path: Path) -> None:
    source, dest = "shares-plain", "shares-seismic"
    for name in (source, dest):
        node.indices.delete(index=name, ignore_unavailable=True)
    handle, _ = ensure_index(node, source, replicas=0)
    node.indices.put_settings(index=source, body=OWN)  # the destination copies it: its own value to put back
    Ingestor(handle, tiny_encoder, IngestOptions(prune=PRUNE), DeadLetters(None)).run(DictSource(documents()))
    node.indices.refresh(index=source)
    common = ("--url", shared_ml_node.url, "--model", str(tiny_checkpoint), "--source", source, "--dest", dest,
              "--vector-field", "seismic", "--text-field", "text", "--prune", PRUNE, "--slices", "2")
    first = run_cli("reindex", *common, "--share", "1/2", "--dead-letter", str(tmp_path / "one.jsonl"))
    assert first.returncode == 0, first.stderr
    assert "the job waits for share(s) 2" in first.stderr
    assert watched_settings(node, dest) == {f"index.{key}": value for key, value in LOADING_SETTINGS.items()}
    assert milco_meta(node, dest)[LOADING_META] == {"refresh_interval": "5s"}
    second = run_cli("reindex", *common, "--share", "2/2", "--dead-letter", str(tmp_path / "two.jsonl"))
    assert second.returncode == 0, second.stderr
    assert "every share of shares-plain -> shares-seismic is done" in second.stderr
    assert watched_settings(node, dest) == OWN and LOADING_META not in milco_meta(node, dest)
    node.indices.refresh(index=dest)
    assert node.count(index=dest)["count"] == 60
    for name in (source, dest):
        node.indices.delete(index=name)
