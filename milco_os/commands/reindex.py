"""``milco-os reindex`` and ``milco-os enrich``: add MILCO to indices that already exist."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from milco_os.commands.config_file import config_option
from milco_os.commands.encode import parse_prune
from milco_os.commands.encoder_options import encoder_options, load_encoder
from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.index import (
    bulk_concurrency_option,
    has_milco_fields,
    vector_field_option,
    vectors_in_source_option,
    warn_clipped,
)
from milco_os.commands.seismic import SAMPLE_TEXTS, seismic_index_options, seismic_parameters
from milco_os.commands.notices import NoticePrinter, unavailable_timeout_option
from milco_os.pipeline.shares import Share


class DocsPerSecondColumn(ProgressColumn):
    """Documents per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} docs/s" if task.speed else "- docs/s")


def run_reindex(*, connection: Connection, source: str,
                dest: str, text_field: str, encoder_args: tuple, prune, slices: int | None, batch_size: int,
                bulk_concurrency: int,
                alias: str | None, resume: bool, skip_existing: bool, dead_letter: Path | None,
                json_log: Path | None, in_place: bool, passages: bool = False, id_field: str | None = None,
                unavailable_timeout: float = 120.0, vector_field: str | None = None,
                seismic_flags: dict | None = None, vectors_in_source: bool | None = None, workers: int = 1,
                worker_threads: int | None = None, share: Share = Share()) -> None:
    from milco_os.engines import engine_for
    from milco_os.pipeline.checkpoints import SliceCheckpoint
    from milco_os.pipeline.dead_letters import DeadLetters
    from milco_os.pipeline.ingest import IngestOptions
    from milco_os.pipeline.reindex import ReindexPlan, Reindexer
    from milco_os.pipeline.reindex_workers import WorkerSetup, set_cpu_threads
    from milco_os.pipeline.job_ledger import JobLedger, ShareCounts

    if slices is None and not share.whole:
        raise click.UsageError("--share needs --slices, the same on every host (each host takes its share of them)")
    slices = slices or workers
    client = connection.client()
    ledger = None if share.whole else JobLedger(engine_for(client), "enrich" if in_place else "reindex", source, dest,
                                                slices, share.of)
    if ledger:
        ledger.check()
    encoder = load_encoder(*encoder_args, unavailable_timeout_s=unavailable_timeout)
    if workers == 1:  # this process is the one worker
        set_cpu_threads(worker_threads)
    if passages and encoder.tokenizer is None:
        raise click.UsageError("--passages splits texts with the model's tokenizer: use --model DIR")
    dead_letter = dead_letter or Path(f"{dest}{'.' + share.label if share.label else ''}.dead-letter.jsonl")
    checkpoint = SliceCheckpoint.load_or_new(dead_letter.with_suffix(".checkpoint.json"), source, dest, slices,
                                             resume, share.slice_ids(slices))
    seismic = seismic_parameters(seismic_flags or {}, vector_field, creating=not has_milco_fields(client, dest),
                                 encoder=encoder, prune=prune, sample=lambda: index_texts(client, source, text_field))
    plan = ReindexPlan(source, dest, IngestOptions(text_field=text_field, batch_size=batch_size, prune=prune,
                                                   model_name=encoder.name, skip_existing=skip_existing,
                                                   passages=passages, unavailable_timeout_s=unavailable_timeout,
                                                   bulk_concurrency=bulk_concurrency),
                       slices=slices, resume=resume, alias=alias, id_field=id_field, vector_type=vector_field,
                       in_place=in_place, seismic=seismic, vectors_in_source=vectors_in_source, workers=workers)
    worker_setup = WorkerSetup(connection.client, functools.partial(load_encoder, *encoder_args,
                                                                    unavailable_timeout_s=unavailable_timeout),
                               cpu_threads=worker_threads)
    total = client.count(index=source)["count"]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DocsPerSecondColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    log = json_log.open("a", encoding="utf-8") if json_log else None
    with dead_letter.open("a" if resume else "w", encoding="utf-8") as stream, \
            Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        overall = progress.add_task("total", total=total,
                                    completed=sum(s.read for s in checkpoint.slices.values()))
        tasks = {n: progress.add_task(f"slice {n}", total=None, completed=state.read)
                 for n, state in checkpoint.slices.items()}

        def advance(slice_id: int, count: int) -> None:
            progress.advance(tasks[slice_id], count)
            progress.advance(overall, count)

        def log_line(line: dict) -> None:
            if log:
                log.write(json.dumps(line) + "\n")
                log.flush()

        notices = NoticePrinter(progress.console)
        letters = DeadLetters(stream, on_entry=notices)
        letters.count = sum(1 for _ in dead_letter.open(encoding="utf-8")) if resume and dead_letter.exists() else 0
        try:
            reindexer = Reindexer(client, encoder, plan, checkpoint, letters, on_progress=advance, log_line=log_line,
                                  worker_setup=worker_setup)
            summary = reindexer.run()
        finally:
            notices.finish(str(dead_letter))
    throughput = summary.read / summary.elapsed_s if summary.elapsed_s else 0.0
    report = {**summary.as_dict(), "docs_per_s": round(throughput, 1)}
    if log:
        log.write(json.dumps({"time": time.time(), "summary": report}) + "\n")
        log.close()
    click.echo(json.dumps(report), err=True)
    warn_clipped(summary.clipped, reindexer.dest)
    if ledger:
        finish_share(client, ledger, share, checkpoint.run, ShareCounts(summary.read, summary.written, letters.count),
                     alias if not in_place else None, source, dest)
    elif alias and not in_place:
        from milco_os.pipeline.reindex import move_alias

        click.echo(move_alias(client, alias, dest, source, letters.count), err=True)
    if summary.failed or letters.count:
        click.echo(f"{letters.count} document(s) refused: see {dead_letter}", err=True)
        sys.exit(1)


def finish_share(client, ledger, share: Share, run: str, counts, alias: str | None, source: str, dest: str) -> None:
    """Record this share's ``run`` as done; once the job is complete, the share moves the alias (the one that
    completed it, or a finished share resumed: moving it again changes nothing)."""
    from milco_os.pipeline.reindex import move_alias

    shares = ledger.record(share, counts, run)
    if shares is None:
        waiting = sorted(set(range(1, share.of + 1)) - set(ledger.done_shares()))
        click.echo(f"share {share} done; the job waits for share(s) {', '.join(map(str, waiting))}"
                   f"{' before moving alias ' + alias if alias else ''}.", err=True)
        return
    click.echo(f"every share of {source} -> {dest} is done ({share.of} shares).", err=True)
    if alias:
        click.echo(move_alias(client, alias, dest, source, sum(c.dead_lettered for c in shares.values())), err=True)


def index_texts(client, index: str, text_field: str) -> list[str]:
    """The text of the first documents of ``index`` (a sample for measuring the encoder's weights)."""
    hits = client.search(index=index, body={"size": SAMPLE_TEXTS, "_source": [text_field]})["hits"]["hits"]
    return [hit["_source"][text_field] for hit in hits if isinstance(hit["_source"].get(text_field), str)]


def parse_share(ctx: click.Context, param: click.Parameter, value: str) -> Share:
    try:
        return Share.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


common_options = (
    click.option("--text-field", required=True, help="Field holding the text to encode."),
    click.option("--prune", default="none", show_default=True, callback=parse_prune, help="Document pruning spec."),
    click.option("--slices", default=None, type=click.IntRange(min=1),
                 help="Parallel readers (slices of the index) [default: --workers]; with --share, the job's total, "
                      "the same on every host."),
    click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
                 help="Processes on this host the slices are dealt to, each with its own cluster connection and "
                      "encoder (model or Triton connection)."),
    click.option("--worker-threads", default=None, type=click.IntRange(min=1),
                 help="CPU threads each worker's in-process model uses [default: torch's, every core in each "
                      "worker]; with one worker, this process's."),
    click.option("--share", default="1/1", show_default=True, callback=parse_share, metavar="K/N",
                 help="Take share K of N of the job's slices (one host each, with its own checkpoint and "
                      "--resume); the share that completes the job moves --alias."),
    click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1)),
    bulk_concurrency_option,
    click.option("--resume", is_flag=True, help="Continue from the checkpoint next to the dead-letter file."),
    click.option("--skip-existing", is_flag=True,
                 help="Skip documents already encoded with this model, pruning and text."),
    click.option("--dead-letter", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="JSONL file for refused documents; the checkpoint lives beside it."),
    click.option("--json-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Append machine-readable progress lines here."),
    unavailable_timeout_option,
    vector_field_option,
    seismic_index_options,
)


def with_common_options(command):
    for option in reversed(common_options):
        command = option(command)
    return command


@click.command("reindex")
@config_option
@connection_options
@click.option("--source", required=True, help="Existing index to read.")
@click.option("--dest", required=True, help="MILCO index to write (created from mappings/ + the source's mapping).")
@click.option("--alias", default=None, help="Move this alias onto DEST once counts are verified.")
@click.option("--id-field", default=None, help="Source field holding DEST's ids (default: the same _id).")
@click.option("--passages", is_flag=True, help="Nested per-passage vectors (512-token windows) in DEST.")
@vectors_in_source_option
@with_common_options
@encoder_options
def reindex(connection, source, dest, alias, id_field, passages, vectors_in_source, text_field, prune, slices,
            workers, worker_threads, share, batch_size, bulk_concurrency, resume, skip_existing, dead_letter, json_log,
            unavailable_timeout, vector_field, seismic_flags, model, triton_url, triton_model, triton_protocol) -> None:
    """Copy SOURCE into DEST with MILCO vectors (same ids, every field kept), resumably."""
    run_reindex(connection=connection, source=source, dest=dest,
                text_field=text_field, encoder_args=(model, triton_url, triton_model, triton_protocol), prune=prune,
                slices=slices, batch_size=batch_size, bulk_concurrency=bulk_concurrency, alias=alias, resume=resume,
                skip_existing=skip_existing,
                dead_letter=dead_letter, json_log=json_log, in_place=False, passages=passages, id_field=id_field,
                unavailable_timeout=unavailable_timeout, vector_field=vector_field, seismic_flags=seismic_flags,
                vectors_in_source=vectors_in_source, workers=workers, worker_threads=worker_threads, share=share)


@click.command("enrich")
@config_option
@connection_options
@click.option("--index", required=True, help="Index whose documents gain MILCO fields in place.")
@with_common_options
@encoder_options
def enrich(connection, index, text_field, prune, slices, workers, worker_threads, share, batch_size, bulk_concurrency,
           resume, skip_existing, dead_letter, json_log, unavailable_timeout, vector_field, seismic_flags, model,
           triton_url, triton_model, triton_protocol) -> None:
    """Add MILCO fields to INDEX's documents with optimistic concurrency; changed documents are not overwritten."""
    run_reindex(connection=connection, source=index, dest=index,
                text_field=text_field, encoder_args=(model, triton_url, triton_model, triton_protocol), prune=prune,
                slices=slices, batch_size=batch_size, bulk_concurrency=bulk_concurrency, alias=None, resume=resume,
                skip_existing=skip_existing,
                dead_letter=dead_letter, json_log=json_log, in_place=True,
                unavailable_timeout=unavailable_timeout, vector_field=vector_field, seismic_flags=seismic_flags,
                workers=workers, worker_threads=worker_threads, share=share)
