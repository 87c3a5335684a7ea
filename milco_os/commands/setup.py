"""``milco-os setup``: a MILCO index on a cluster."""

from __future__ import annotations

import click

from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.options import (
    EncoderChoice,
    encoder_options,
    index_option,
    index_parameters,
    vector_field_option,
    vectors_in_source_option,
)


@click.command("setup")
@connection_options
@index_option
@click.option("--passages", is_flag=True, help="Nested per-passage vectors for long documents.")
@click.option("--shards", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(min=0))
@vector_field_option
@vectors_in_source_option
@encoder_options
def setup(connection: Connection, index: str, passages: bool, shards: int, replicas: int, vector_field: str | None,
          index_flags: dict, vectors_in_source: bool | None, encoder_choice: EncoderChoice) -> None:
    """Create a MILCO index from mappings/ (a no-op when a compatible one exists).

    With an encoder (--model or --triton-url) the index records its model, and search,
    ingest, reindex and enrich refuse another. A seismic index's quantisation ceilings are
    measured with the encoder on the sample corpus, unless --quantization-ceilings gives them.
    """
    from milco_os.index.handle import has_milco_fields
    from milco_os.index.model_record import ModelRecord
    from milco_os.index.setup import claim_index, ensure_index
    from milco_os.sample_corpus import sample_texts

    engine = connection.engine()
    encoder = encoder_choice.load() if encoder_choice.given else None
    parameters = index_parameters(vector_field, index_flags, creating=not has_milco_fields(engine, index),
                                  encoder_for=lambda: encoder, texts=sample_texts)
    handle, outcome = ensure_index(engine, index, passages=passages, shards=shards, replicas=replicas,
                                   vector_type=vector_field, parameters=parameters,
                                   vectors_in_source=vectors_in_source,
                                   model=ModelRecord.recordable(encoder))
    click.echo(f"index {index}: {outcome}")
    if encoder and outcome == "exists":
        handle, notice = claim_index(handle, encoder)
        if notice:
            click.echo(f"warning: {notice}", err=True)
    if handle.model:
        click.echo(f"model: {handle.model.describe()}")
    summary = handle.field.parameters_summary()
    if parameters is not None and summary:
        click.echo(summary)
