"""``milco-os eval`` on the sample corpus against a real node."""

from __future__ import annotations

from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from milco_os.index.setup import ensure_index
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import JsonlSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.sample_corpus import sample_dir
from milco_os.encoding.pruning import PruneSpec
from tests.commands import run_cli

pytestmark = pytest.mark.integration

SAMPLE = sample_dir()


def test_eval_scores_the_sample_corpus_and_writes_a_run(opensearch: OpenSearch, opensearch_url: str, index_name: str,
                                                        tiny_checkpoint: Path, tiny_encoder: MilcoEncoder,
                                                        tmp_path: Path) -> None:
    ensure_index(opensearch, index_name, replicas=0)
    options = IngestOptions(prune=PruneSpec.parse("topk:48"))
    summary = Ingestor(open_index(opensearch, index_name), tiny_encoder, options, DeadLetters(None)).run(JsonlSource(SAMPLE / "corpus.jsonl", id_field="_id"))
    opensearch.indices.refresh(index=index_name)
    assert summary.written == 600 and opensearch.exists(index=index_name, id="p05-ja-0")

    run_file = tmp_path / "run.trec"
    result = run_cli("eval", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                     "--queries", str(SAMPLE / "queries.jsonl"), "--qrels", str(SAMPLE / "qrels" / "test.tsv"),
                     "--metrics", "ndcg@10,recall@100,mrr@10", "--depth", "20", "--run-out", str(run_file),
                     timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("nDCG@10", "R@100", "RR@10", "120 queries"):
        assert name in result.stdout
    lines = [line.split() for line in run_file.read_text().splitlines()]
    assert len({line[0] for line in lines}) == 120 and all(len(line) == 6 for line in lines)
    assert max(int(line[3]) for line in lines) == 20
    first = [float(line[4]) for line in lines if line[0] == "q00-en"]
    assert first == sorted(first, reverse=True)


def test_eval_compares_bm25_milco_and_fusions_and_plots_them(opensearch: OpenSearch, opensearch_url: str,
                                                             index_name: str, tiny_checkpoint: Path,
                                                             tiny_encoder: MilcoEncoder, tmp_path: Path) -> None:
    ensure_index(opensearch, index_name, replicas=0)
    options = IngestOptions(prune=PruneSpec.parse("topk:48"))
    Ingestor(open_index(opensearch, index_name), tiny_encoder, options, DeadLetters(None)).run(
        JsonlSource(SAMPLE / "corpus.jsonl", id_field="_id"))
    opensearch.indices.refresh(index=index_name)
    plot = tmp_path / "methods.png"
    result = run_cli("eval", "--url", opensearch_url, "--index", index_name, "--model", str(tiny_checkpoint),
                     "--queries", str(SAMPLE / "queries.jsonl"), "--qrels", str(SAMPLE / "qrels" / "test.tsv"),
                     "--depth", "20", "--compare", "--bm25-weights", "0.3,0.5", "--rank-constants", "60",
                     "--plot", str(plot), timeout=900, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 6}
    for method in ("BM25", "MILCO", "min_max, BM25 weight 0.3", "min_max, BM25 weight 0.5", "l2, BM25 weight 0.3",
                   "rrf, rank constant 60"):
        assert method in rows, result.stdout
    ndcg = {name: float(line.split("│")[2]) for name, line in rows.items() if name != "method"}
    assert all(0 <= value <= 1 for value in ndcg.values()) and len(set(ndcg.values())) > 1
    # A node without neural-search: each fusion is done here, and the output says so.
    assert "min_max, BM25 weight 0.3: fused here" in result.stdout and "no neural-search" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
