"""Reindexing an existing index into a MILCO index (or enriching it in place), resumably and in parallel.

Each slice is read by a ``SliceReader`` (``slice_reader``) into its own ingest pipeline,
in threads or over worker processes; its progress (its PIT, its cursor, its counts) is
checkpointed after every written batch. ``--resume`` continues each unfinished slice after
its cursor, and documents already written with the same model, pruning and text are
skipped, so nothing is encoded twice. The destination is prepared by ``reindex_dest``; the
alias is moved by ``alias_swap``.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from milco_os.encoding.contract import SparseEncoder
from milco_os.engines import engine_for
from milco_os.errors import MilcoOsError
from milco_os.index.handle import (
    IndexHandle,
    chosen_vector_field,
    index_uuid,
    pinned,
    stored_bulk_pipeline,
    stored_mapping,
    stored_vectors_in_source,
)
from milco_os.index.model_record import ModelRecord
from milco_os.index.setup import claim_index, ensure_pipelines, pipelines_installed, record_model
from milco_os.pipeline.bulk_loading import bulk_loading
from milco_os.pipeline.checkpoints import SliceCheckpoint, SliceState
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import BatchReport, IngestOptions, IngestSummary, Ingestor
from milco_os.pipeline.reindex_dest import dest_body, ensure_milco_mapping
from milco_os.pipeline.reindex_workers import WorkerPool, WorkerSetup, slice_groups
from milco_os.pipeline.slice_reader import SliceReader, supports_pit_reading


@dataclass(frozen=True)
class ReindexPlan:
    """SOURCE -> DEST (``in_place``: DEST is SOURCE, enriched) with these options, read in ``slices``."""

    source: str
    dest: str
    options: IngestOptions
    slices: int = 1
    resume: bool = False
    alias: str | None = None
    id_field: str | None = None
    vector_type: str | None = None
    in_place: bool = False
    field_parameters: Any = None  # a new DEST's index parameters (its vector-field type's dataclass)
    vectors_in_source: bool | None = None  # for a new DEST; None: as in SOURCE
    workers: int = 1  # processes on this host that share the slices
    # False for one host's share of a job: DEST keeps its loading settings for the share that completes the job.
    put_back_loading: bool = True


class Reindexer:
    """Runs a reindex or an enrich over all slices in parallel, each slice its own ingest pipeline; with
    ``plan.workers`` > 1, the slices are dealt to that many processes (each connecting through ``worker_setup``)."""

    def __init__(self, client: Any, encoder: SparseEncoder, plan: ReindexPlan, checkpoint: SliceCheckpoint,
                 dead_letters: DeadLetters, on_progress: Callable[[int, int], None] = lambda s, n: None,
                 log_line: Callable[[dict], None] = lambda line: None,
                 worker_setup: WorkerSetup | None = None, on_notice: Callable[[str], None] = lambda text: None
                 ) -> None:
        self.engine, self.encoder, self.plan = engine_for(client), encoder, plan
        self.checkpoint, self.dead_letters = checkpoint, dead_letters
        self.on_progress, self.log_line, self.worker_setup = on_progress, log_line, worker_setup
        self.on_notice = on_notice  # what the model check adopted, allowed or could not check
        self.dest: IndexHandle | None = None  # known once ``run`` prepared it

    def run(self) -> IngestSummary:
        """Every unfinished slice of the checkpoint, in threads (or in ``plan.workers`` processes); the summary of
        the whole job, earlier runs included."""
        started = time.perf_counter()
        dest = self.dest = self._prepare_dest()
        use_pit = supports_pit_reading(self.engine, self.plan.source)
        pending = [n for n, state in self.checkpoint.slices.items() if not state.done]
        with bulk_loading(dest, self.on_notice, put_back=self.plan.put_back_loading):
            if self.plan.workers > 1 and len(pending) > 1:
                summaries = self._run_in_processes(dest, pending, use_pit)
            else:
                summaries = [self.run_slices(dest, pending, use_pit)]
        total = IngestSummary()
        for summary in summaries:
            total.merge(summary)
        # A resumed run reports the whole job: what earlier runs did comes from the checkpoint.
        total.read, total.written, total.skipped, total.failed = (
            sum(getattr(state, name) for state in self.checkpoint.slices.values())
            for name in ("read", "written", "skipped", "failed"))
        total.elapsed_s = time.perf_counter() - started
        moved_to = ModelRecord.recordable(self.encoder)
        if self.plan.options.re_encode and moved_to and not total.failed and dest.model != moved_to:
            record_model(self.engine, dest.name, moved_to)  # every document is on it now
            self.dest = replace(dest, model=moved_to)
            self.on_notice(f"index '{dest.name}' now records {moved_to.describe()}")
        return total

    def run_slices(self, dest: IndexHandle, slice_ids: list[int], use_pit: bool) -> IngestSummary:
        """These slices, each in its own thread; the first error is raised once every slice stopped."""
        summaries: dict[int, IngestSummary] = {}
        errors: list[BaseException] = []

        def work(slice_id: int) -> None:
            try:
                summaries[slice_id] = self._run_slice(dest, slice_id, use_pit)
            except BaseException as exc:  # reported after every slice stopped
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,), name=f"milco-slice-{n}") for n in slice_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        total = IngestSummary()
        for summary in summaries.values():
            total.merge(summary)
        return total

    def _run_in_processes(self, dest: IndexHandle, pending: list[int], use_pit: bool) -> list[IngestSummary]:
        if self.worker_setup is None:
            raise ValueError("running slices in worker processes needs a WorkerSetup")

        def log_state(slice_id: int, state: SliceState) -> None:
            self.log_line({"time": time.time(), "slice": slice_id, "read": state.read, "written": state.written,
                           "skipped": state.skipped, "failed": state.failed})

        pool = WorkerPool(self.worker_setup, self.checkpoint, self.dead_letters, self.on_progress, log_state)
        handle = (dest.name, dest.field, dest.vectors_in_source, dest.bulk_pipeline, dest.model, dest.uuid)
        groups = slice_groups(pending, self.plan.workers)
        return pool.run(groups, functools.partial(run_slice_group, self.plan, handle, use_pit))

    def _prepare_dest(self) -> IndexHandle:
        plan, engine = self.plan, self.engine
        if plan.options.re_encode and not self.encoder.fingerprint:
            raise MilcoOsError(f"--re-encode moves an index to the encoder's model, and {self.encoder.name} does not "
                               "know its fingerprint", hint="encode with --model DIR, or a Triton model exported "
                                                            "by this version ('milco-os triton export').")
        exists = engine.client.indices.exists(index=plan.dest)
        field = chosen_vector_field(engine, stored_mapping(engine, plan.dest) if exists else None, plan.vector_type,
                                    plan.field_parameters)
        if plan.in_place:
            ensure_milco_mapping(engine, plan.dest, field)
        elif not exists:
            default_pipeline = pipelines_installed(ensure_pipelines(engine))
            engine.create_index_unless_exists(plan.dest, dest_body(
                engine, plan.source, field, passages=plan.options.passages, default_pipeline=default_pipeline,
                vectors_in_source=plan.vectors_in_source, model=ModelRecord.recordable(self.encoder)))
        mapping = stored_mapping(engine, plan.dest)
        dest = IndexHandle(engine, plan.dest, field, stored_vectors_in_source(mapping, field),
                           stored_bulk_pipeline(engine, plan.dest), ModelRecord.from_mapping(mapping))
        options = plan.options
        dest, notice = claim_index(dest, self.encoder, allow_other=options.allow_other_model or options.re_encode)
        if options.re_encode and dest.model != ModelRecord.of(self.encoder):
            notice = (f"index '{dest.name}' ({dest.model.describe() if dest.model else 'no model recorded'}) moves to "
                      f"{ModelRecord.of(self.encoder).describe()}: documents of another model are encoded again")
        if notice:
            self.on_notice(f"warning: {notice}")
        # In place, documents go back where they were read, an alias included.
        return replace(dest, uuid=index_uuid(engine, dest.name)) if plan.in_place else pinned(dest)

    def _run_slice(self, dest: IndexHandle, slice_id: int, use_pit: bool) -> IngestSummary:
        state = self.checkpoint.slices[slice_id]
        reader = SliceReader(self.engine, self.plan.source, slice_id, self.plan.slices, state,
                             self.plan.options.batch_size, use_pit, self.plan.id_field, guard_writes=self.plan.in_place,
                             unavailable_timeout_s=self.plan.options.unavailable_timeout_s)
        options = self.plan.options
        if self.plan.resume and not options.skip_existing:
            # Documents written before an interruption are recognised and not encoded again.
            options = replace(options, skip_existing=True)

        def batch_done(report: BatchReport) -> None:
            state.advance(report)
            self.checkpoint.save()
            self.log_line({"time": time.time(), "slice": slice_id, "read": state.read, "written": state.written,
                           "skipped": state.skipped, "failed": state.failed})

        ingestor = Ingestor(dest, self.encoder, options, self.dead_letters,
                            on_progress=lambda n: self.on_progress(slice_id, n), on_batch_done=batch_done)
        summary = ingestor.run(reader)
        state.done = True
        self.checkpoint.save()
        return summary


def run_slice_group(plan: ReindexPlan, handle: tuple, use_pit: bool, client: Any, encoder: SparseEncoder,
                    checkpoint: Any, dead_letters: DeadLetters, on_progress: Callable[[int, int], None]
                    ) -> IngestSummary:
    """A worker process's share of a job: the checkpoint's slices into the prepared DEST (``handle``: the
    IndexHandle's fields but its engine)."""
    reindexer = Reindexer(client, encoder, plan, checkpoint, dead_letters, on_progress=on_progress)
    dest = reindexer.dest = IndexHandle(reindexer.engine, *handle)
    return reindexer.run_slices(dest, list(checkpoint.slices), use_pit)
