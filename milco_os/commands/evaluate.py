"""``milco-os eval``: run a query set against an index and score it with ir-measures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.options import (
    EncoderChoice,
    SearchFlags,
    check_query_encoder,
    encoder_options,
    index_option,
    search_options,
)


@click.command("eval")
@connection_options
@index_option
@encoder_options
@click.option("--queries", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR queries.jsonl or TREC topics TSV.")
@click.option("--qrels", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="BEIR qrels TSV or TREC qrels.")
@click.option("--metrics", default="ndcg@10,recall@100,mrr@10", show_default=True)
@click.option("--depth", default=100, show_default=True, type=click.IntRange(min=1), help="Hits per query.")
@click.option("--run-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the run in TREC format here.")
@click.option("--compare", is_flag=True,
              help="Score BM25, MILCO and a sweep of BM25+MILCO fusions side by side, with their latencies.")
@click.option("--bm25-weights", default="0.2,0.3,0.5", show_default=True, metavar="LIST",
              help="--compare: the BM25 weights of the min_max sweep (the first one for l2).")
@click.option("--rank-constants", default="20,60", show_default=True, metavar="LIST",
              help="--compare: the rank constants of the rrf sweep.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="--compare: draw the first metric against p95 latency into this image (PNG).")
@search_options
def evaluate(connection: Connection, index: str, encoder_choice: EncoderChoice, queries: Path, qrels: Path,
             metrics: str, depth: int, run_out: Path | None, compare: bool, bm25_weights: str, rank_constants: str,
             plot: Path | None, search_flags: SearchFlags) -> None:
    """Score INDEX on QUERIES against QRELS with the same options as `milco-os search` (or, with --compare,
    BM25, MILCO and BM25+MILCO fusions side by side)."""
    import ir_measures

    from milco_os.index.handle import open_index
    from milco_os.search.evaluation import parse_metrics, read_qrels, read_queries, score_run, write_trec_run
    from milco_os.search.searcher import search

    try:
        measures = parse_metrics(metrics)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    if not compare and plot:
        raise click.UsageError("--plot draws the comparison of --compare")
    if compare and run_out:
        raise click.UsageError("--run-out writes the run of one method: leave out --compare")
    sweep = (number_list(bm25_weights, float, "--bm25-weights"), number_list(rank_constants, int, "--rank-constants"))
    encoder_choice.check_for_queries(search_flags)
    engine = connection.engine()  # a wrong URL or password fails here, before a model is loaded
    handle = open_index(engine, index)
    encoder = encoder_choice.for_queries(search_flags)
    options = search_flags.build(engine.client, depth)
    check_query_encoder(handle, encoder, search_flags)  # the cluster's models are known to exist now
    topics, judgements = read_queries(queries), read_qrels(qrels)
    if compare:
        compare_methods(handle, encoder, topics, judgements, measures, options, sweep, depth, plot)
        return
    try:
        run = [ir_measures.ScoredDoc(qid, hit.id, hit.score)
               for qid, text in topics.items() for hit in search(handle, encoder, text, options)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    scores = score_run(run, judgements, measures)
    table = Table("metric", "value", title=f"{index}: {len(topics)} queries", title_justify="left")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)
    if run_out:
        write_trec_run(run, run_out)
        click.echo(f"run written to {run_out}", err=True)


def number_list(text: str, kind: type, flag: str) -> list:
    """Comma-separated numbers; a usage error names the flag."""
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, not {text!r}", param_hint=flag) from None
    if not values:
        raise click.BadParameter("expected at least one number", param_hint=flag)
    return values


def compare_methods(handle: Any, encoder: Any, topics: dict[str, str], judgements: list, measures: list,
                    options: Any, sweep: tuple[list[float], list[int]], depth: int, plot: Path | None) -> None:
    """The comparison table (and plot) of BM25, MILCO and the fusions of ``sweep`` (BM25 weights, rank
    constants)."""
    from milco_os.search import comparison

    try:
        candidates = comparison.methods(options, *sweep)
        rows = comparison.compare(handle, encoder, topics, judgements, measures, candidates, depth,
                                  on_method=lambda name: click.echo(f"running {name}", err=True))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    names = list(rows[0].scores)
    table = Table("method", *names, "p50 ms", "p95 ms", title=f"{handle.name}: {len(topics)} queries, {depth} hits "
                  "each", title_justify="left")
    for row in rows:
        table.add_row(row.name, *(f"{row.scores[name]:.4f}" for name in names), f"{row.p50_ms:.1f}",
                      f"{row.p95_ms:.1f}")
    Console().print(table)
    for row in rows:
        if row.fused_by:
            click.echo(f"{row.name}: {row.fused_by}")
    if plot:
        comparison.plot(rows, names[0], plot)
        click.echo(f"plot written to {plot}", err=True)
