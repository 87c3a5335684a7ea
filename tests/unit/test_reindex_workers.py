"""A job's slices dealt to worker processes and to hosts' shares: who takes which slice, and what the parent
process keeps (checkpoint, dead letters, progress) from workers that finish, fail or die."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from milco_os.pipeline.checkpoints import CheckpointMismatchError, SliceCheckpoint
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import Outcome
from milco_os.pipeline.ingest import IngestSummary
from milco_os.pipeline.reindex_workers import WorkerError, WorkerPool, WorkerSetup, set_cpu_threads, slice_groups
from milco_os.pipeline.shares import Share, ShareError


def test_shares_take_every_slice_once() -> None:
    shares = [Share.parse(f"{k}/3") for k in (1, 2, 3)]
    taken = [share.slice_ids(8) for share in shares]
    assert taken == [[0, 3, 6], [1, 4, 7], [2, 5]]
    assert sorted(n for ids in taken for n in ids) == list(range(8))
    assert Share.parse(" 2 / 3 ").label == "share-2-of-3" and Share().label == ""


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_malformed_shares_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a share K/N"):
        Share.parse(text)


def test_fewer_slices_than_shares_is_refused() -> None:
    with pytest.raises(ShareError, match="2 slice\\(s\\) cannot be shared by 3 hosts"):
        Share(1, 3).slice_ids(2)


def test_slices_are_dealt_round_to_the_workers() -> None:
    assert slice_groups([0, 1, 2, 3, 4], 2) == [[0, 2, 4], [1, 3]]
    assert slice_groups([5], 4) == [[5]]


def test_a_share_checkpoint_resumes_only_the_same_share(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint.json"
    checkpoint = SliceCheckpoint.load_or_new(path, "src", "dest", 6, False, Share(2, 2).slice_ids(6))
    checkpoint.slices[3].read = 40
    checkpoint.save()

    resumed = SliceCheckpoint.load_or_new(path, "src", "dest", 6, True, Share(2, 2).slice_ids(6))
    assert sorted(resumed.slices) == [1, 3, 5] and resumed.slices[3].read == 40 and resumed.total == 6
    with pytest.raises(CheckpointMismatchError, match="over slices 1, 3, 5 of 6, not this one"):
        SliceCheckpoint.load_or_new(path, "src", "dest", 6, True, Share(1, 2).slice_ids(6))


def toy_slices(client, encoder, checkpoint, dead_letters, on_progress) -> IngestSummary:
    """Stands in for a worker's reindex: 10 documents per slice, one refused in slice 1; slice 9 dies, slice 8
    fails."""
    summary = IngestSummary()
    for number, state in checkpoint.slices.items():
        if number == 9:
            os._exit(3)
        if number == 8:
            raise RuntimeError("the encoder broke")
        if number == 1:
            dead_letters.add(Outcome("refused", line=None, doc_id="d-1", field="text", reason="not a string"))
        state.read += 10
        on_progress(number, 10)
        checkpoint.save()
        state.done = True
        checkpoint.save()
        summary.read += 10
    return summary


def pool(tmp_path: Path, slices: int) -> tuple[WorkerPool, SliceCheckpoint, DeadLetters, list]:
    checkpoint = SliceCheckpoint.load_or_new(tmp_path / "c.json", "src", "dest", slices, False)
    progress: list = []
    letters = DeadLetters(None)
    return (WorkerPool(WorkerSetup(dict, dict), checkpoint, letters, lambda n, count: progress.append((n, count)),
                       lambda n, state: None), checkpoint, letters, progress)


def test_workers_report_to_the_parents_checkpoint_dead_letters_and_progress(tmp_path: Path) -> None:
    workers, checkpoint, letters, progress = pool(tmp_path, 3)

    summaries = workers.run([[0, 2], [1]], toy_slices)

    assert sorted(summary.read for summary in summaries) == [10, 20]
    assert letters.count == 1 and sorted(progress) == [(0, 10), (1, 10), (2, 10)]
    saved = json.loads((tmp_path / "c.json").read_text())
    assert all(state["done"] and state["read"] == 10 for state in saved["slices"].values())


def test_a_failing_worker_stops_the_job_with_its_error_and_a_dead_one_is_named(tmp_path: Path) -> None:
    workers, checkpoint, _, _ = pool(tmp_path, 10)
    with pytest.raises(WorkerError, match="RuntimeError: the encoder broke"):
        workers.run([[0], [8]], toy_slices)
    assert checkpoint.slices[0].done and not checkpoint.slices[8].done

    workers, checkpoint, _, _ = pool(tmp_path, 10)
    with pytest.raises(WorkerError, match="worker process 1 died \\(exit code 3\\)"):
        workers.run([[0], [9]], toy_slices)
    assert checkpoint.slices[0].done and not checkpoint.slices[9].done


def test_a_worker_encoding_in_process_runs_on_the_threads_it_is_given() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        set_cpu_threads(None)
        assert torch.get_num_threads() == before
        set_cpu_threads(before + 1)
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)
