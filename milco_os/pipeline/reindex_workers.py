"""A reindex's slices spread over worker processes on this host, each with its own cluster client and encoder.

The parent process keeps the job's single checkpoint, dead-letter file and progress: each
worker sends it, in order, the dead letters of a batch, then the slice's new state, so a
saved checkpoint never runs ahead of the dead-letter file.
"""

from __future__ import annotations

import multiprocessing
import queue
import sys
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable

from milco_os.encoding.contract import SparseEncoder
from milco_os.errors import MilcoOsError
from milco_os.pipeline.checkpoints import SliceState
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import Outcome
from milco_os.pipeline.ingest import IngestSummary

EVENT_POLL_S = 0.5


class WorkerError(MilcoOsError):
    """A worker process failed without a cluster or encoder error to report, or died."""


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker process makes its own connections: picklable callables (module-level functions, partials or
    bound methods of picklable objects)."""

    make_client: Callable[[], Any]
    make_encoder: Callable[[], SparseEncoder]
    cpu_threads: int | None = None  # per worker, for an in-process model; default: torch's


class ForwardedCheckpoint:
    """A worker's slices, whose ``save`` sends their states to the parent (which writes the checkpoint file)."""

    def __init__(self, slices: dict[int, SliceState], events: Any) -> None:
        self.slices, self.events = slices, events

    def save(self) -> None:
        self.events.put(("states", {n: asdict(state) for n, state in self.slices.items()}))


class ForwardedDeadLetters(DeadLetters):
    """Dead letters sent to the parent, which writes them to the job's file."""

    def __init__(self, events: Any) -> None:
        super().__init__(None)
        self.events = events

    def add(self, outcome: Outcome) -> None:
        self.count += 1
        self.events.put(("dead", outcome))


def slice_groups(slice_ids: list[int], workers: int) -> list[list[int]]:
    """``slice_ids`` dealt round to at most ``workers`` non-empty groups."""
    return [group for group in (slice_ids[start::workers] for start in range(workers)) if group]


def run_worker(number: int, setup: WorkerSetup, run_slices: Callable[..., IngestSummary], states: dict[int, dict],
               events: Any) -> None:
    """A worker process's body: connect, run its slices (``run_slices(client, encoder, checkpoint, dead_letters,
    on_progress)``), report the summary or the error."""
    encoder = None
    try:
        client, encoder = setup.make_client(), setup.make_encoder()
        set_cpu_threads(setup.cpu_threads)
        checkpoint = ForwardedCheckpoint({n: SliceState(**state) for n, state in states.items()}, events)
        summary = run_slices(client, encoder, checkpoint, ForwardedDeadLetters(events),
                             lambda slice_id, count: events.put(("progress", slice_id, count)))
        events.put(("done", number, summary))
    except BaseException as exc:  # reported to the parent, which stops the job with it
        events.put(("error", number, transportable(exc)))
    finally:
        close = getattr(encoder, "close", None)
        if close is not None:
            close()


def set_cpu_threads(threads: int | None) -> None:
    """Run an in-process model on ``threads`` CPU threads (None: torch's default, every core). A process encoding
    through Triton has not loaded torch and is left alone."""
    torch = sys.modules.get("torch")
    if torch is not None and threads:
        torch.set_num_threads(threads)


def transportable(exc: BaseException) -> MilcoOsError:
    """``exc`` as an error that survives pickling, with the message the CLI would print."""
    if isinstance(exc, MilcoOsError):
        return exc
    from milco_os.engines import engine_of_error

    engine = engine_of_error(exc)
    if engine is not None:
        from milco_os.cluster import cluster_error

        return cluster_error(exc, "the cluster")
    return WorkerError(f"a worker process failed: {type(exc).__name__}: {exc}",
                       log_tail="".join(traceback.format_exception(exc)).rstrip())


class WorkerPool:
    """Runs groups of slices in worker processes and feeds what they report to the parent's checkpoint,
    dead letters and progress."""

    def __init__(self, setup: WorkerSetup, checkpoint: Any, dead_letters: DeadLetters,
                 on_progress: Callable[[int, int], None], on_state: Callable[[int, SliceState], None]) -> None:
        self.setup, self.checkpoint, self.dead_letters = setup, checkpoint, dead_letters
        self.on_progress, self.on_state = on_progress, on_state

    def run(self, groups: list[list[int]], run_slices: Callable[..., IngestSummary]) -> list[IngestSummary]:
        """One summary per group of slices (``run_slices`` runs a group in a worker, see ``run_worker``); the
        first worker error is raised once every worker has stopped."""
        context = multiprocessing.get_context("spawn")  # no forked copies of this process's threads and sockets
        events = context.Queue()
        processes = [context.Process(target=run_worker, name=f"milco-worker-{number}",
                                     args=(number, self.setup, run_slices,
                                           {n: asdict(self.checkpoint.slices[n]) for n in group}, events))
                     for number, group in enumerate(groups)]
        for process in processes:
            process.start()
        summaries: list[IngestSummary] = []
        errors: list[BaseException] = []
        finished: set[int] = set()
        try:
            while len(finished) < len(processes):
                try:
                    event = events.get(timeout=EVENT_POLL_S)
                except queue.Empty:
                    for number, process in enumerate(processes):
                        if number not in finished and not process.is_alive():
                            finished.add(number)
                            errors.append(WorkerError(f"worker process {number} died (exit code {process.exitcode}) "
                                                      "without finishing its slices",
                                                      hint="re-run with --resume: the checkpoint holds what it did."))
                    continue
                self._handle(event, summaries, errors, finished)
        finally:
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
                    process.join()
        if errors:
            raise errors[0]
        return summaries

    def _handle(self, event: tuple, summaries: list[IngestSummary], errors: list[BaseException],
                finished: set[int]) -> None:
        kind = event[0]
        if kind == "progress":
            self.on_progress(event[1], event[2])
        elif kind == "dead":
            self.dead_letters.add(event[1])
        elif kind == "states":
            changed = {number: SliceState(**state) for number, state in event[1].items()
                       if SliceState(**state) != self.checkpoint.slices[number]}
            self.checkpoint.slices.update(changed)
            self.checkpoint.save()
            for number, state in changed.items():
                self.on_state(number, state)
        elif kind == "done":
            finished.add(event[1])
            summaries.append(event[2])
        elif kind == "error":
            finished.add(event[1])
            errors.append(event[2])
