"""``milco-os eval``: run a query set against an index and score it with ir-measures."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from milco_os.commands.encoder_options import encoder_options
from milco_os.commands.connection import connection_options
from milco_os.commands.index import (
    check_query_encoder,
    index_option,
    options_from_flags,
    query_encoder,
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
def evaluate(connection, index, model, triton_url, triton_model, triton_protocol, queries, qrels, metrics,
             depth, run_out, search_flags: dict) -> None:
    """Score INDEX on QUERIES against QRELS with the same options as `milco-os search`."""
    import ir_measures

    from milco_os.index.handle import open_index
    from milco_os.search.evaluation import parse_metrics, read_qrels, read_queries, score_run, write_trec_run
    from milco_os.search.searcher import search

    try:
        measures = parse_metrics(metrics)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    check_query_encoder(search_flags, model, triton_url)
    client = connection.client()  # a wrong URL or password fails here, before a model is loaded
    handle = open_index(client, index)
    encoder = query_encoder(search_flags, model, triton_url, triton_model, triton_protocol)
    options = options_from_flags(client, depth, search_flags)
    topics, judgements = read_queries(queries), read_qrels(qrels)
    run = [ir_measures.ScoredDoc(qid, hit.id, hit.score)
           for qid, text in topics.items() for hit in search(handle, encoder, text, options)]
    scores = score_run(run, judgements, measures)
    table = Table("metric", "value", title=f"{index}: {len(topics)} queries", title_justify="left")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)
    if run_out:
        write_trec_run(run, run_out)
        click.echo(f"run written to {run_out}", err=True)
