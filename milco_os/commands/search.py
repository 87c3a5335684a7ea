"""``milco-os search``: one query against a MILCO index."""

from __future__ import annotations

import json

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
from milco_os.search.searcher import SearchOptions


@click.command("search")
@connection_options
@index_option
@encoder_options
@click.option("--top-k", default=SearchOptions.size, show_default=True, type=click.IntRange(min=1))
@search_options
@click.option("--explain", is_flag=True, help="Show each hit's per-term contributions (and a fused hit's "
              "BM25 and MILCO scores).")
@click.option("--format", "output", type=click.Choice(["json", "table"]), default="table", show_default=True)
@click.argument("query")
def search(connection: Connection, index: str, encoder_choice: EncoderChoice, top_k: int, search_flags: SearchFlags,
           explain: bool, output: str, query: str) -> None:
    """Search INDEX for QUERY by the MILCO dot product."""
    from milco_os.index.handle import open_index
    from milco_os.search.searcher import search_result

    encoder_choice.check_for_queries(search_flags)
    engine = connection.engine()  # a wrong URL or password fails here, before a model is loaded
    handle = open_index(engine, index)
    encoder = encoder_choice.for_queries(search_flags)
    # The table lists matched terms where the index stores the vectors to read them from.
    options = search_flags.build(engine.client, top_k, explain=explain or (output == "table" and
                                                                           handle.vectors_in_source),
                                 fused_parts=explain)
    check_query_encoder(handle, encoder, search_flags)  # the cluster's models are known to exist now
    try:
        result = search_result(handle, encoder, query, options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    hits = result.hits
    if output == "json":
        click.echo(json.dumps({**({"fused_by": result.fused_by} if result.fused_by else {}), "hits": [
            {"id": hit.id, "score": hit.score, **({"terms": hit.terms} if explain else {}),
             **({"bm25": hit.parts[0], "milco": hit.parts[1]} if explain and hit.parts else {})} for hit in hits
        ]}, ensure_ascii=False))
        return
    parts = any(hit.parts for hit in hits)
    table = Table("id", "score", *(("BM25", "MILCO") if parts else ()), "top matched terms",
                  title=f"query: {query}", title_justify="left")
    for hit in hits:
        both = [part_text(part) for part in hit.parts or (None, None)] if parts else []
        table.add_row(hit.id, f"{hit.score:.4f}", *both,
                      ", ".join(f"{n} {v:.2f}" for n, v in list(hit.terms.items())[:5]))
    Console().print(table)
    if result.fused_by:
        click.echo(f"BM25 and MILCO {result.fused_by}")


def part_text(score: float | None) -> str:
    """One list's raw score of a fused hit, or a dash where the list does not hold it."""
    return "-" if score is None else f"{score:.4f}"
