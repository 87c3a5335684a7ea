"""``milco-os status``: the cluster's MILCO indices, the model each records and the models its documents are of."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from milco_os.commands.connection import Connection, connection_options


@click.command("status")
@connection_options
@click.option("--index", "pattern", default="*", show_default=True, help="Index name or pattern.")
@click.option("--format", "output", type=click.Choice(["json", "table"]), default="table", show_default=True)
def status(connection: Connection, pattern: str, output: str) -> None:
    """List the MILCO indices matching --index: documents, vector field, the model each records, its documents
    by model and fingerprint, and whether a mixed index needs repair (exit 1 when one does)."""
    from milco_os.index.inventory import inventory

    found = inventory(connection.engine(), pattern)
    if output == "json":
        click.echo(json.dumps([{
            "index": entry.name, "documents": entry.documents, "vector_field": entry.vector_field,
            "model": entry.model.as_meta() if entry.model else None,
            "documents_by_model": [{"model": name or None, "fingerprint": fingerprint or None, "documents": count}
                                   for (name, fingerprint), count in entry.by_model.items()],
            "verdict": entry.verdict()} for entry in found]))
    else:
        table = Table("index", "documents", "vector field", "model", "documents by model", "state",
                      title=f"MILCO indices matching {pattern}", title_justify="left")
        for entry in found:
            table.add_row(entry.name, str(entry.documents), entry.vector_field,
                          entry.model.describe() if entry.model else "-", entry.models_line(), entry.verdict())
        Console(width=200).print(table)
    if not found:
        click.echo(f"no MILCO index matches {pattern}", err=True)
    if any(entry.others for entry in found):
        raise SystemExit(1)
