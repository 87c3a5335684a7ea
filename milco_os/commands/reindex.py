"""``milco-os reindex`` and ``milco-os enrich``: add MILCO to indices that already exist."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from milco_os.commands.config_file import config_option
from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.job_files import JobFiles, dead_letter_option, resume_option
from milco_os.commands.options import (
    INGEST,
    EncoderChoice,
    encoder_options,
    index_parameters,
    ingest_options,
    vector_field_option,
    vectors_in_source_option,
    with_group,
)
from milco_os.pipeline.shares import Share

SAMPLE_DOCUMENTS = 256  # documents of SOURCE a new index's parameters are measured on


@dataclass(frozen=True)
class ReindexJob:
    """One reindex (SOURCE -> DEST) or enrich (``in_place``) as the command line gives it."""

    connection: Connection
    encoder_choice: EncoderChoice
    source: str
    dest: str
    in_place: bool
    ingest: dict  # IngestOptions fields
    slices: int | None
    workers: int
    worker_threads: int | None
    share: Share
    resume: bool
    dead_letter: Path | None
    json_log: Path | None
    vector_field: str | None
    index_flags: dict
    alias: str | None = None
    id_field: str | None = None
    vectors_in_source: bool | None = None

    @property
    def files(self) -> JobFiles:
        label = f".{self.share.label}" if self.share.label else ""
        return JobFiles(self.dead_letter or Path(f"{self.dest}{label}.dead-letter.jsonl"))


class DocsPerSecondColumn(ProgressColumn):
    """Documents per second, from rich's own speed estimate."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:,.0f} docs/s" if task.speed else "- docs/s")


def run_reindex(job: ReindexJob) -> None:
    """Run ``job`` to the end (or to an outage, with its checkpoint), then move the alias and report."""
    from milco_os.index.handle import has_milco_fields
    from milco_os.pipeline.checkpoints import SliceCheckpoint
    from milco_os.pipeline.ingest import IngestOptions
    from milco_os.pipeline.job_ledger import JobLedger, ShareCounts
    from milco_os.pipeline.reindex import ReindexPlan, Reindexer
    from milco_os.pipeline.reindex_workers import WorkerSetup, set_cpu_threads

    share = job.share
    if job.slices is None and not share.whole:
        raise click.UsageError("--share needs --slices, the same on every host (each host takes its share of them)")
    slices = job.slices or job.workers
    engine = job.connection.engine()
    ledger = None if share.whole else JobLedger(engine, "enrich" if job.in_place else "reindex", job.source,
                                                job.dest, slices, share.of)
    if ledger:
        ledger.check()
    timeout = job.ingest["unavailable_timeout_s"]
    encoder = job.encoder_choice.load(timeout)
    if job.workers == 1:  # this process is the one worker
        set_cpu_threads(job.worker_threads)
    options = IngestOptions(**job.ingest, model_name=encoder.name)
    if options.passages and encoder.tokenizer is None:
        raise click.UsageError("--passages splits texts with the model's tokenizer: use --model DIR")
    files = job.files
    checkpoint = SliceCheckpoint.load_or_new(files.checkpoint, job.source, job.dest, slices, job.resume,
                                             share.slice_ids(slices))
    parameters = index_parameters(job.vector_field, job.index_flags,
                                  creating=not has_milco_fields(engine, job.dest), encoder_for=lambda: encoder,
                                  prune=options.prune, texts=lambda: index_texts(engine.client, job.source,
                                                                                 options.text_field),
                                  documents=lambda: engine.client.count(index=job.source)["count"])
    plan = ReindexPlan(job.source, job.dest, options, slices=slices, resume=job.resume, alias=job.alias,
                       id_field=job.id_field, vector_type=job.vector_field, in_place=job.in_place,
                       field_parameters=parameters, vectors_in_source=job.vectors_in_source, workers=job.workers,
                       put_back_loading=share.whole)
    worker_setup = WorkerSetup(job.connection.client, functools.partial(job.encoder_choice.load, timeout),
                               cpu_threads=job.worker_threads)
    total = engine.client.count(index=job.source)["count"]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DocsPerSecondColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    log = job.json_log.open("a", encoding="utf-8") if job.json_log else None
    with files.running(job.resume, *columns) as (progress, letters, notices):
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

        reindexer = Reindexer(engine.client, encoder, plan, checkpoint, letters, on_progress=advance,
                              log_line=log_line, worker_setup=worker_setup, on_notice=notices)
        summary = reindexer.run()
    throughput = summary.read / summary.elapsed_s if summary.elapsed_s else 0.0
    report = {**summary.as_dict(), "docs_per_s": round(throughput, 1)}
    if log:
        log.write(json.dumps({"time": time.time(), "summary": report}) + "\n")
        log.close()
    click.echo(json.dumps(report), err=True)
    if summary.clipped:
        click.echo(f"warning: {reindexer.dest.field.clipping_warning(summary.clipped)}", err=True)
    alias = job.alias if not job.in_place else None
    if ledger:
        finish_share(reindexer.dest, ledger, share, checkpoint.run,
                     ShareCounts(summary.read, summary.written, letters.count), alias, job.source)
    elif alias:
        from milco_os.pipeline.alias_swap import move_alias

        click.echo(move_alias(engine.client, alias, job.dest, job.source, letters.count), err=True)
    # A share's checkpoint records its run: a finished share resumed is recognised by the job's ledger.
    files.finish(letters.count or summary.failed, keep_checkpoint=not share.whole)


def finish_share(dest, ledger, share: Share, run: str, counts, alias: str | None, source: str) -> None:
    """Record this share's ``run`` as done; once the job is complete, the share puts back DEST's own settings and
    moves the alias (the one that completed it, or a finished share resumed: doing so again changes nothing)."""
    from milco_os.pipeline.alias_swap import move_alias
    from milco_os.pipeline.bulk_loading import put_back_loading

    shares = ledger.record(share, counts, run)
    if shares is None:
        waiting = sorted(set(range(1, share.of + 1)) - set(ledger.done_shares()))
        click.echo(f"share {share} done; the job waits for share(s) {', '.join(map(str, waiting))}"
                   f"{' before moving alias ' + alias if alias else ''}.", err=True)
        return
    click.echo(f"every share of {source} -> {dest.name} is done ({share.of} shares).", err=True)
    put_back_loading(dest, lambda line: click.echo(f"warning: {line}", err=True))
    if alias:
        click.echo(move_alias(dest.client, alias, dest.name, source, sum(c.dead_lettered for c in shares.values())),
                   err=True)


def index_texts(client, index: str, text_field: str) -> list[str]:
    """The text of the first documents of ``index`` (a sample for measuring the encoder's weights)."""
    hits = client.search(index=index, body={"size": SAMPLE_DOCUMENTS, "_source": [text_field]})["hits"]["hits"]
    return [hit["_source"][text_field] for hit in hits if isinstance(hit["_source"].get(text_field), str)]


def parse_share(ctx: click.Context, param: click.Parameter, value: str) -> Share:
    try:
        return Share.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


common_options = (
    ingest_options("skip_existing", required=("text_field",)),
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
    resume_option,
    dead_letter_option,
    click.option("--json-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 help="Append machine-readable progress lines here."),
    vector_field_option,
    encoder_options,
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
@with_group(INGEST, "ingest", fields=("passages",))
@vectors_in_source_option
@with_common_options
def reindex(**job) -> None:
    """Copy SOURCE into DEST with MILCO vectors (same ids, every field kept), resumably."""
    run_reindex(ReindexJob(in_place=False, **job))


@click.command("enrich")
@config_option
@connection_options
@click.option("--index", required=True, help="Index whose documents gain MILCO fields in place.")
@with_group(INGEST, "ingest", fields=("re_encode",))
@with_common_options
def enrich(index: str, **job) -> None:
    """Add MILCO fields to INDEX's documents with optimistic concurrency; changed documents are not overwritten."""
    run_reindex(ReindexJob(source=index, dest=index, in_place=True, **job))
