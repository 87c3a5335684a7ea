"""Hybrid search on real nodes: neural-search's hybrid query and pipelines rank as the client-side fusion of the
BM25 and MILCO lists fetched on their own (which tests/unit/test_fusion.py checks against numpy); a node
without neural-search fuses here and says so."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch

from milco_os.encoding.pruning import PruneSpec
from milco_os.errors import MilcoOsError
from milco_os.index.handle import IndexHandle, open_index
from milco_os.index.setup import ensure_index
from milco_os.model import MilcoEncoder
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.sources import JsonlSource
from milco_os.sample_corpus import sample_dir
from milco_os.search.cluster_fusion import cluster_fusion
from milco_os.search.searcher import SearchOptions, SearchResult, search_result
from milco_os.services.opensearch_ml_plugins import ML_DEFAULT_VERSION, ML_VERSIONS
from milco_os.services.temporary_node import temporary_node
from tests.commands import run_cli

pytestmark = pytest.mark.integration

INDEX = "hybrid-sample"
DEPTH = 40
FUSIONS = (
    dict(fusion="min_max", combination="arithmetic_mean", bm25_weight=0.3),
    dict(fusion="min_max", combination="harmonic_mean", bm25_weight=0.5),
    dict(fusion="l2", combination="geometric_mean", bm25_weight=0.6),
    dict(fusion="rrf", rank_constant=60, bm25_weight=0.5),
    dict(fusion="rrf", rank_constant=10, bm25_weight=0.2),
)


def sample_index(client: OpenSearch, encoder: MilcoEncoder) -> IndexHandle:
    """The sample corpus (600 passages, six languages) written by milco-os into a new index."""
    ensure_index(client, INDEX, replicas=0)
    handle = open_index(client, INDEX)
    summary = Ingestor(handle, encoder, IngestOptions(prune=PruneSpec.parse("topk:48")), DeadLetters(None)).run(
        JsonlSource(sample_dir() / "corpus.jsonl", id_field="_id"))
    assert summary.written == 600
    client.indices.refresh(index=INDEX)
    return open_index(client, INDEX)


def queries(count: int = 8) -> list[str]:
    lines = (sample_dir() / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::len(lines) // count]][:count]


@pytest.fixture(scope="module", params=ML_VERSIONS)
def neural_index(request: pytest.FixtureRequest, tiny_encoder: MilcoEncoder) -> Iterator[IndexHandle]:
    """The sample index on a node with neural-search, per version (the suite's shared node for the default)."""
    with ExitStack() as stack:
        node = request.getfixturevalue("shared_ml_node") if request.param == ML_DEFAULT_VERSION else \
            stack.enter_context(temporary_node(version=request.param, ml=True))
        client = OpenSearch(hosts=[node.url], timeout=120)
        yield sample_index(client, tiny_encoder)
        client.indices.delete(index=INDEX, ignore_unavailable=True)
        client.close()


def assert_same_ranking(cluster: SearchResult, client: SearchResult) -> None:
    """The cluster's page holds the client's best scores in order (to float precision), each hit scored the same;
    documents tied at a score may come in another order."""
    scores = {hit.id: hit.score for hit in client.hits}
    assert cluster.hits, "the fused search found nothing"
    for hit in cluster.hits:
        assert hit.id in scores and hit.score == pytest.approx(scores[hit.id], rel=1e-4), hit.id
    wanted = [hit.score for hit in client.hits[:len(cluster.hits)]]
    assert [hit.score for hit in cluster.hits] == pytest.approx(wanted, rel=1e-4)


@pytest.mark.parametrize("settings", FUSIONS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_the_pipeline_ranks_as_the_client_side_fusion(neural_index: IndexHandle, tiny_encoder: MilcoEncoder,
                                                      settings: dict) -> None:
    if settings["fusion"] == "rrf" and settings["bm25_weight"] != 0.5 and \
            cluster_fusion(neural_index.engine).plugin_version < (3, 0):
        with pytest.raises(MilcoOsError, match="before 3.0 weighs the two lists of an RRF equally"):
            search_result(neural_index, tiny_encoder, queries()[0], SearchOptions(fuse_in="cluster", **settings))
        return
    for query in queries():
        common = dict(settings, fusion_depth=DEPTH, source=False)
        cluster = search_result(neural_index, tiny_encoder, query, SearchOptions(size=10, fuse_in="cluster",
                                                                                 **common))
        here = search_result(neural_index, tiny_encoder, query, SearchOptions(size=DEPTH, fuse_in="client", **common))
        assert cluster.fused_by.startswith("fused in the cluster: hybrid query through search pipeline "
                                           "milco-os-hybrid-")
        assert here.fused_by.startswith("fused here")
        assert_same_ranking(cluster, here)


def test_a_page_further_down_is_the_next_part_of_the_ranking(neural_index: IndexHandle,
                                                            tiny_encoder: MilcoEncoder) -> None:
    common = dict(fusion="min_max", fusion_depth=DEPTH, source=False)
    first = search_result(neural_index, tiny_encoder, queries()[0], SearchOptions(size=20, **common))
    second = search_result(neural_index, tiny_encoder, queries()[0], SearchOptions(size=10, from_=10, **common))
    assert "in the cluster" in second.fused_by
    assert [hit.score for hit in second.hits] == pytest.approx([hit.score for hit in first.hits[10:20]], rel=1e-5)


def test_a_hit_fused_in_the_cluster_has_its_parts_only_when_asked(neural_index: IndexHandle,
                                                                  tiny_encoder: MilcoEncoder) -> None:
    common = dict(fusion="rrf", fusion_depth=DEPTH, source=False)
    bare = search_result(neural_index, tiny_encoder, queries()[3], SearchOptions(**common))
    explained = search_result(neural_index, tiny_encoder, queries()[3], SearchOptions(fused_parts=True, **common))
    assert "in the cluster" in bare.fused_by and "in the cluster" in explained.fused_by
    assert bare.hits and all(hit.parts is None for hit in bare.hits)
    assert [hit.id for hit in explained.hits] == [hit.id for hit in bare.hits]
    assert all(hit.parts is not None and hit.parts != (None, None) for hit in explained.hits)


def test_explain_shows_each_lists_raw_score_through_the_cli(neural_index: IndexHandle, tiny_checkpoint: Path,
                                                            tiny_encoder: MilcoEncoder) -> None:
    url = "http://{host}:{port}".format(**neural_index.client.transport.hosts[0])
    result = run_cli("search", "--url", url, "--index", INDEX, "--model", str(tiny_checkpoint), "--fusion", "rrf",
                     "--explain", "--format", "json", queries()[1], timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["fused_by"].startswith("fused in the cluster")
    hits = report["hits"]
    assert hits and all("bm25" in hit and "milco" in hit for hit in hits)
    assert any(hit["bm25"] is not None for hit in hits) and any(hit["milco"] is not None for hit in hits)
    # With equal weights, RRF gives a document 1 / (60 + rank) per list that holds it.
    assert hits[0]["score"] <= 2 / 61 + 1e-6


def test_a_node_without_neural_search_fuses_here_and_says_so(opensearch: OpenSearch,
                                                             tiny_encoder: MilcoEncoder) -> None:
    handle = sample_index(opensearch, tiny_encoder)
    try:
        options = dict(fusion="min_max", bm25_weight=0.4, fusion_depth=DEPTH, source=False)
        auto = search_result(handle, tiny_encoder, queries()[2], SearchOptions(size=DEPTH, **options))
        assert auto.fused_by.startswith("fused here") and "no neural-search 2.19+" in auto.fused_by
        here = search_result(handle, tiny_encoder, queries()[2], SearchOptions(size=DEPTH, fuse_in="client",
                                                                               **options))
        assert [(hit.id, hit.score) for hit in auto.hits] == [(hit.id, hit.score) for hit in here.hits]
        with pytest.raises(MilcoOsError, match="cannot fuse this hybrid search"):
            search_result(handle, tiny_encoder, queries()[2], SearchOptions(fuse_in="cluster", **options))
    finally:
        opensearch.indices.delete(index=INDEX, ignore_unavailable=True)
