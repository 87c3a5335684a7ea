"""``milco-os ingest``: a JSONL file encoded and written into a MILCO index."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.job_files import JobFiles, dead_letter_option, resume_option
from milco_os.commands.options import (
    EncoderChoice,
    encoder_options,
    index_option,
    index_parameters,
    ingest_options,
    vector_field_option,
)

SAMPLE_LINES = 1024  # lines of FILE read for the texts a new index's parameters are measured on


@click.command("ingest")
@connection_options
@index_option
@encoder_options
@ingest_options("max_length", "passages", "passage_tokens", "passage_overlap")
@click.option("--id-field", default="id", show_default=True)
@click.option("--routing-field", default=None, help="Field whose value routes each document to its shard.")
@dead_letter_option
@resume_option
@vector_field_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(connection: Connection, index: str, encoder_choice: EncoderChoice, ingest: dict, id_field: str,
           routing_field: str | None, dead_letter: Path | None, resume: bool, vector_field: str | None,
           index_flags: dict, file: Path) -> None:
    """Encode FILE.jsonl and write it into INDEX with MILCO vectors; exit 1 when anything was refused.

    Progress is checkpointed after every written batch; a run stopped by an outage
    (exit 4 for the cluster, 7 for Triton) goes on with --resume.
    """
    from milco_os.index.handle import has_milco_fields, pinned
    from milco_os.index.model_record import ModelRecord
    from milco_os.index.setup import claim_index, ensure_index
    from milco_os.pipeline.bulk_loading import bulk_loading
    from milco_os.pipeline.checkpoints import FileCheckpoint
    from milco_os.pipeline.ingest import IngestOptions, Ingestor
    from milco_os.pipeline.sources import JsonlSource, first_texts

    encoder_choice.check()
    engine = connection.engine()  # a wrong URL or password fails here, before a model is loaded
    encoder = encoder_choice.load(ingest["unavailable_timeout_s"])
    options = IngestOptions(**ingest, model_name=encoder.name)
    if options.passages and encoder.tokenizer is None:
        raise click.UsageError("--passages splits texts with the model's tokenizer: use --model DIR")
    parameters = index_parameters(vector_field, index_flags, creating=not has_milco_fields(engine, index),
                                  encoder_for=lambda: encoder, prune=options.prune,
                                  texts=lambda: first_texts(file, options.text_field, SAMPLE_LINES))
    handle, _ = ensure_index(engine, index, passages=options.passages, vector_type=vector_field,
                             parameters=parameters, model=ModelRecord.recordable(encoder))
    handle, notice = claim_index(handle, encoder, allow_other=options.allow_other_model)
    if notice:
        click.echo(f"warning: {notice}", err=True)
    handle = pinned(handle)
    if handle.name != index:
        click.echo(f"writing into {handle.name}, the index alias {index} points at (it stays there should the "
                   "alias move during the job)", err=True)
    files = JobFiles(dead_letter or file.with_suffix(".dead-letter.jsonl"))
    checkpoint = FileCheckpoint.load_or_new(files.checkpoint, file, index, resume)
    total = sum(1 for line in file.open("rb") if line.strip())
    if checkpoint.line:
        files.say(f"resuming after line {checkpoint.line} of {file}")
    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with files.running(resume, *columns) as (progress, letters, notices):
        task = progress.add_task("ingest", total=total)
        ingestor = Ingestor(handle, encoder, options, letters, on_progress=lambda n: progress.advance(task, n),
                            on_batch_done=lambda report: checkpoint.advance(report, files.checkpoint))
        source = JsonlSource(file, id_field=id_field, routing_field=routing_field, start_after=checkpoint.line,
                             on_notice=notices)
        with bulk_loading(handle, notices):
            summary = ingestor.run(source)
    handle.client.indices.refresh(index=handle.name)
    click.echo(json.dumps(summary.as_dict()), err=True)
    if summary.clipped:
        click.echo(f"warning: {handle.field.clipping_warning(summary.clipped)}", err=True)
    files.finish(letters.count)
