from __future__ import annotations

from pathlib import Path

import ir_measures
import pytest

from milco_os.sample_corpus import sample_dir
from milco_os.search.evaluation import parse_metrics, read_qrels, read_queries, score_run, write_trec_run

SAMPLE = sample_dir()


def test_metric_aliases_and_unknown_metrics() -> None:
    assert [str(m) for m in parse_metrics("ndcg@10, recall@100,mrr@10,map,P@5")] == [
        "nDCG@10", "R@100", "RR@10", "AP", "P@5"]
    with pytest.raises(ValueError, match="unknown metric 'bogus@3'"):
        parse_metrics("bogus@3")


def test_sample_corpus_files_load_in_both_formats(tmp_path: Path) -> None:
    queries = read_queries(SAMPLE / "queries.jsonl")
    qrels = read_qrels(SAMPLE / "qrels" / "test.tsv")
    assert len(queries) == 120 and len(qrels) == 3600
    assert queries["q05-ja"] == "日本の首都はどこですか"
    (tmp_path / "topics.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
    (tmp_path / "qrels.txt").write_text("".join(f"{r.query_id} 0 {r.doc_id} {r.relevance}\n" for r in qrels))
    assert read_queries(tmp_path / "topics.tsv") == queries
    assert sorted(read_qrels(tmp_path / "qrels.txt")) == sorted(qrels)


def test_a_perfect_run_scores_one_and_a_reversed_run_less(tmp_path: Path) -> None:
    qrels = [ir_measures.Qrel("q", f"d{n}", 2 if n < 2 else 1) for n in range(5)]
    perfect = [ir_measures.ScoredDoc("q", f"d{n}", 10.0 - n) for n in range(5)]
    reversed_run = [ir_measures.ScoredDoc("q", f"d{n}", float(n)) for n in range(5)]
    measures = parse_metrics("ndcg@10,mrr@10")
    assert score_run(perfect, qrels, measures) == {"nDCG@10": 1.0, "RR@10": 1.0}
    assert score_run(reversed_run, qrels, measures)["nDCG@10"] < 1.0
    write_trec_run(reversed_run, tmp_path / "run.trec")
    lines = (tmp_path / "run.trec").read_text().splitlines()
    assert lines[0] == "q Q0 d4 1 4.000000 milco-os" and lines[-1].startswith("q Q0 d0 5 ")
