"""The ingest pipeline: source -> encode stage -> bulk sink, then outcomes -> summary, dead letters, checkpoint.

Encoding batch N+1 (the calling thread) overlaps the bulk writes of the batches before it:
up to ``bulk_concurrency`` writes are in flight (a shard works on one bulk request with one
thread, so a single request at a time leaves cores idle). A batch's write is one request, or
several one after another where its actions pass ``bulk_max_bytes``. A batch that holds an id of a
batch still being written waits for it, so the last version of a document still wins. A
batch's outcomes are recorded in the calling thread, in order, once its write returned (every
request of it done): the summary has one owner, and the ``on_batch_done`` checkpointer only
ever sees what was written. See ``encode_stage`` for what happens to each document.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Iterator

from milco_os.encoding.contract import SparseEncoder
from milco_os.index.handle import IndexHandle
from milco_os.pipeline.bulk_sink import BulkSink, stored_meta
from milco_os.pipeline.bulk_writer import BulkWriter
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import Outcome, SourceItem
from milco_os.pipeline.encode_stage import EncodeStage, IngestOptions, PreparedBatch
from milco_os.pipeline.index_guard import SameIndexGuard
from milco_os.pipeline.refusal_window import RefusalWindow

__all__ = ["BatchReport", "IngestOptions", "IngestSummary", "Ingestor"]


@dataclass(frozen=True)
class BatchReport:
    """One finished batch: the position of its last input (all done up to there) and what became of them."""

    last_position: object
    read: int
    written: int
    skipped: int
    no_text: int
    failed: int
    conflicts: int

    @classmethod
    def of(cls, last_position: object, outcomes: list[Outcome]) -> BatchReport:
        kinds = [outcome.kind for outcome in outcomes]
        return cls(last_position, len(outcomes), kinds.count("written"), kinds.count("skipped"),
                   sum(1 for outcome in outcomes if outcome.no_text), kinds.count("refused"), kinds.count("conflict"))


BATCH_COUNTS = ("read", "written", "skipped", "no_text", "failed", "conflicts")


@dataclass
class IngestSummary:
    """What a run did: the batch counts, what the source and the writer rode out, and where the time went."""

    read: int = 0
    written: int = 0
    no_text: int = 0
    failed: int = 0
    skipped: int = 0
    conflicts: int = 0
    duplicate_ids: int = 0
    rejected_429: int = 0
    unavailable_retries: int = 0
    index_fault_retries: int = 0  # documents sent again while the index refused writes (a block, a permission)
    clipped: int = 0
    elapsed_s: float = 0.0
    encode_s: float = 0.0
    bulk_s: float = 0.0

    def add(self, report: BatchReport) -> None:
        for name in BATCH_COUNTS:
            setattr(self, name, getattr(self, name) + getattr(report, name))

    def merge(self, other: IngestSummary) -> None:
        """Add another run's figures (elapsed time excepted)."""
        for name in (*BATCH_COUNTS, "duplicate_ids", "rejected_429", "unavailable_retries", "index_fault_retries",
                     "clipped", "encode_s", "bulk_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, float]:
        return {"read": self.read, "written": self.written, "skipped": self.skipped, "no_text": self.no_text,
                "failed": self.failed, "conflicts": self.conflicts, "duplicate_ids": self.duplicate_ids,
                "rejected_429_retried": self.rejected_429, "unavailable_retries": self.unavailable_retries,
                **({"index_fault_retries": self.index_fault_retries} if self.index_fault_retries else {}),
                **({"clipped": self.clipped} if self.clipped else {}), "elapsed_s": round(self.elapsed_s, 3),
                "encode_s": round(self.encode_s, 3), "bulk_s": round(self.bulk_s, 3)}


class Ingestor:
    """Writes the documents of a source into an index with MILCO vectors; one instance per run.

    ``on_progress`` gets the number of inputs finished, ``on_batch_done`` each finished batch's
    report (a checkpointer), both from the thread that calls ``run``.
    """

    def __init__(self, index: IndexHandle, encoder: SparseEncoder, options: IngestOptions,
                 dead_letters: DeadLetters, *, on_progress: Callable[[int], None] = lambda n: None,
                 on_batch_done: Callable[[BatchReport], None] = lambda report: None) -> None:
        self.same_index = SameIndexGuard(index)
        self.stage = EncodeStage(index.name, index.field, encoder, options, partial(stored_meta, index))
        self.writer = BulkWriter(index.engine, unavailable_timeout_s=options.unavailable_timeout_s,
                                 pipeline=index.bulk_pipeline, max_bytes=options.bulk_max_bytes)
        self.sink = BulkSink(self.writer)
        self.options = options
        self.dead_letters = dead_letters
        self.on_progress = on_progress
        self.on_batch_done = on_batch_done
        self.summary = IngestSummary()
        self.refusals = RefusalWindow()

    def run(self, source: Iterable[SourceItem]) -> IngestSummary:
        started = time.perf_counter()
        concurrency = self.options.bulk_concurrency
        try:
            with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="milco-bulk") as pool:
                pending: deque[tuple[PreparedBatch, Future, set[str]]] = deque()
                for batch in batches(source, self.options.batch_size):
                    prepared = self.stage.prepare(batch)
                    ids = {str(action["_id"]) for action in prepared.actions}
                    while pending and (len(pending) >= concurrency or any(ids & held for _, _, held in pending)):
                        self._finish(*pending.popleft()[:2])
                    pending.append((prepared, pool.submit(self.sink.write, prepared), ids))
                while pending:
                    self._finish(*pending.popleft()[:2])
        finally:
            self.summary.duplicate_ids = getattr(getattr(source, "duplicates", None), "count", 0)
            self.summary.rejected_429 = self.writer.counters.rejected_429
            self.summary.unavailable_retries = self.writer.counters.unavailable_retries
            self.summary.index_fault_retries = self.writer.counters.index_fault_retries
            self.summary.elapsed_s = time.perf_counter() - started
        return self.summary

    def _finish(self, prepared: PreparedBatch, write: Future) -> None:
        """Record a batch once its write returned: dead letters, summary, progress, then the checkpoint."""
        written, bulk_s = write.result()
        self.refusals.check(written)  # a systematic refusal stops the job before its documents are dead-lettered
        outcomes = prepared.settled + written
        for outcome in outcomes:
            if outcome.kind == "refused":
                self.dead_letters.add(outcome)
        report = BatchReport.of(prepared.last_position, outcomes)
        self.summary.add(report)
        self.summary.encode_s += prepared.encode_s
        self.summary.clipped += prepared.clipped
        self.summary.bulk_s += bulk_s
        self.on_progress(report.read)
        self.same_index.check()  # before the checkpoint counts the batch as written
        self.on_batch_done(report)


def batches(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    batch: list[SourceItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
