"""``milco-os opensearch-ml``: OpenSearch encodes with MILCO on Triton through ml-commons and neural-search."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.options import PRUNE, parsed

name_option = click.option("--name", default="milco-os", show_default=True,
                           help="Prefix of everything the installation makes (model group, connectors, models, "
                                "pipelines).")


@click.group("opensearch-ml")
def opensearch_ml() -> None:
    """Let the cluster encode with MILCO on Triton: sparse_encoding ingest and neural_sparse query_text."""


@opensearch_ml.command("install")
@connection_options
@click.option("--triton-url", required=True,
              help="Triton's HTTP endpoint as the cluster's nodes reach it, e.g. http://10.0.0.5:8000.")
@click.option("--triton-model", default="milco", show_default=True, help="The model's name in Triton.")
@name_option
@click.option("--prune", default="none", show_default=True, callback=parsed(PRUNE),
              help="Document pruning spec Triton applies to what the cluster encodes.")
@click.option("--max-length", type=click.IntRange(min=2), default=None, help="Token limit per text.")
@click.option("--text-field", default="text", show_default=True, help="The field the ingest pipeline encodes.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 64),
              help="Texts per Triton request (at most the model's max_batch_size).")
@click.option("--index", default=None, help="Also create this MILCO index if missing.")
@click.option("--default-pipeline", is_flag=True,
              help="With --index: make the encode pipeline the index's default ingest pipeline.")
def install(connection: Connection, triton_url: str, triton_model: str, name: str, prune, max_length: int | None,
            text_field: str, batch_size: int, index: str | None, default_pipeline: bool) -> None:
    """Make (idempotently) the model group, a connector and a deployed remote model per view, the ingest
    pipeline NAME-encode and the search pipeline NAME-two-phase; print their ids as JSON."""
    from milco_os.cluster_ml.bodies import MlInstallation
    from milco_os.cluster_ml.installer import install as install_models
    from milco_os.encoding.triton_client import served_fingerprint
    from milco_os.index.model_record import ModelRecord
    from milco_os.index.setup import ensure_index

    if default_pipeline and not index:
        raise click.UsageError("--default-pipeline sets an index's default pipeline: give --index")
    client = connection.client()
    fingerprint = served_fingerprint(triton_url, triton_model)
    if fingerprint is None:
        click.echo(f"warning: the model's fingerprint could not be read from Triton at {triton_url} here: documents "
                   "the cluster encodes carry none, and indices cannot check the model", err=True)
    installation = MlInstallation(triton_url=triton_url, triton_model=triton_model, name=name, prune=prune,
                                  max_length=max_length, text_field=text_field, batch_size=batch_size,
                                  fingerprint=fingerprint)
    report = install_models(client, installation, on_step=lambda step: click.echo(f"... {step}", err=True))
    if index:
        model = ModelRecord(installation.encoder_name, fingerprint) if fingerprint else None
        _, outcome = ensure_index(client, index, model=model)
        report.actions[f"index {index}"] = outcome
        if default_pipeline:
            client.indices.put_settings(index=index, body={"index.default_pipeline": installation.encode_pipeline})
            report.actions[f"index {index}"] += f", default pipeline {installation.encode_pipeline}"
    click.echo(json.dumps(asdict(report), indent=2))


@opensearch_ml.command("uninstall")
@connection_options
@name_option
def uninstall(connection: Connection, name: str) -> None:
    """Remove what 'install --name NAME' made (indices are left alone); print what was removed."""
    from milco_os.cluster_ml.installer import uninstall as uninstall_models

    click.echo(json.dumps(uninstall_models(connection.client(), name), indent=2))
