"""Retrieval evaluation: queries and judgements in BEIR or TREC formats, metrics from ir-measures.

Queries: BEIR ``queries.jsonl`` (``_id``, ``text``) or TREC topics as TSV (``qid<TAB>text``).
Judgements: BEIR ``qrels/*.tsv`` (``query-id corpus-id score`` with a header line) or TREC
qrels (``qid 0 docid rel``). Metric names: ir-measures' own (``nDCG@10``, ``R@100``,
``RR@10``, ``AP``, ``P@5``) or their lower-case aliases (``ndcg@10``, ``recall@100``, ``mrr@10``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import ir_measures

ALIASES = {"ndcg": "nDCG", "recall": "R", "mrr": "RR", "rr": "RR", "map": "AP", "ap": "AP", "p": "P",
           "precision": "P"}


def parse_metrics(text: str) -> list:
    """ir-measures measures from a comma-separated list; a ValueError names an unknown one."""
    measures = []
    for name in (part.strip() for part in text.split(",") if part.strip()):
        base, sep, cutoff = name.partition("@")
        canonical = ALIASES.get(base.lower(), base) + (sep + cutoff if sep else "")
        try:
            measures.append(ir_measures.parse_measure(canonical))
        except (ValueError, NameError, SyntaxError) as exc:
            raise ValueError(f"unknown metric '{name}' (try ndcg@10, recall@100, mrr@10, map, p@5)") from exc
    if not measures:
        raise ValueError("no metric given")
    return measures


def read_queries(path: Path) -> dict[str, str]:
    """Query id -> text, from BEIR JSONL or a TREC topics TSV."""
    queries: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            record = json.loads(line)
            queries[str(record["_id"])] = record["text"]
            continue
        qid, sep, text = line.partition("\t")
        if not sep:
            raise ValueError(f"{path} line {number}: expected 'query-id<TAB>text'")
        queries[qid.strip()] = text.strip()
    return queries


def read_qrels(path: Path) -> list:
    """Judgements from a BEIR TSV (3 columns, header) or TREC qrels (4 columns)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if lines and len(lines[0].split()) == 3:
        rows = [line.split("\t") for line in lines]
        if not rows[0][2].strip().lstrip("-").isdigit():
            rows = rows[1:]
        return [ir_measures.Qrel(q.strip(), d.strip(), int(s)) for q, d, s in rows]
    return list(ir_measures.read_trec_qrels(str(path)))


def score_run(run: Iterable, qrels: Sequence, measures: Sequence) -> dict[str, float]:
    """Aggregate value per measure name."""
    return {str(measure): value for measure, value in ir_measures.calc_aggregate(measures, qrels, run).items()}


def write_trec_run(run: Sequence, path: Path, name: str = "milco-os") -> None:
    """A TREC run file: ``qid Q0 docid rank score name``, ranks from 1 per query in score order."""
    by_query: dict[str, list] = {}
    for doc in run:
        by_query.setdefault(doc.query_id, []).append(doc)
    with path.open("w", encoding="utf-8") as handle:
        for qid, docs in by_query.items():
            for rank, doc in enumerate(sorted(docs, key=lambda d: -d.score), start=1):
                handle.write(f"{qid} Q0 {doc.doc_id} {rank} {doc.score:.6f} {name}\n")
