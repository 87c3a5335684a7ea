"""``milco-os eval``: run a query set against an index and score it with ir-measures."""

from __future__ import annotations

from pathlib import Path

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
@search_options
def evaluate(connection: Connection, index: str, encoder_choice: EncoderChoice, queries: Path, qrels: Path,
             metrics: str, depth: int, run_out: Path | None, search_flags: SearchFlags) -> None:
    """Score INDEX on QUERIES against QRELS with the same options as `milco-os search`."""
    import ir_measures

    from milco_os.index.handle import open_index
    from milco_os.search.evaluation import parse_metrics, read_qrels, read_queries, score_run, write_trec_run
    from milco_os.search.searcher import search

    try:
        measures = parse_metrics(metrics)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    encoder_choice.check_for_queries(search_flags)
    engine = connection.engine()  # a wrong URL or password fails here, before a model is loaded
    handle = open_index(engine, index)
    encoder = encoder_choice.for_queries(search_flags)
    options = search_flags.build(engine.client, depth)
    check_query_encoder(handle, encoder, search_flags)  # the cluster's models are known to exist now
    topics, judgements = read_queries(queries), read_qrels(qrels)
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
