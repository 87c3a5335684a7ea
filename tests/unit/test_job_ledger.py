"""A shared job's ledger and how a finished share reports, against a scripted cluster keeping the ledger document."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from milco_os.commands.reindex import finish_share
from milco_os.engines import ClusterVersion, engine_for
from milco_os.index.handle import IndexHandle
from milco_os.index.vector_fields import RankFeatures
from milco_os.pipeline.checkpoints import SliceCheckpoint
from milco_os.pipeline.job_ledger import JOBS_INDEX, JobLedger, ShareCounts
from milco_os.pipeline.shares import Share
from tests.unit.scripted_transport import Reply, Request, Script, error_reply, scripted_client

DOC_PATH = f"/{JOBS_INDEX}/_doc/{quote('reindex:books-v1:books-v2', safe='')}"


class LedgerDocument:
    """The ledger document as the cluster keeps it: writes are refused (409) unless they name its sequence number."""

    def __init__(self) -> None:
        self.source: dict | None = None
        self.seq_no = -1

    def get(self, request: Request) -> Reply:
        if self.source is None:
            return Reply(404, {"_index": JOBS_INDEX, "found": False})
        return Reply(200, {"_index": JOBS_INDEX, "found": True, "_seq_no": self.seq_no, "_primary_term": 1,
                           "_source": self.source})

    def put(self, request: Request) -> Reply:
        creating = request.params.get("op_type") == "create"
        if (creating and self.source is not None) or \
                (not creating and int(request.params.get("if_seq_no", -2)) != self.seq_no):
            return error_reply(409, "version_conflict_engine_exception", "version conflict")
        self.source, self.seq_no = request.body, self.seq_no + 1
        return Reply(201 if creating else 200, {"result": "created" if creating else "updated",
                                                "_seq_no": self.seq_no, "_primary_term": 1})


def ledger_cluster(document: LedgerDocument) -> Script:
    return (Script().respond("HEAD", f"/{JOBS_INDEX}", lambda request: Reply(200))
            .respond("GET", DOC_PATH, document.get).respond("PUT", DOC_PATH, document.put))


def share_run(tmp_path: Path, share: Share, resume: bool) -> SliceCheckpoint:
    checkpoint = SliceCheckpoint.load_or_new(tmp_path / f"{share.label}.checkpoint.json", "books-v1", "books-v2", 4,
                                             resume, share.slice_ids(4))
    checkpoint.save()
    return checkpoint


def finish(script: Script, share: Share, checkpoint: SliceCheckpoint, capsys: pytest.CaptureFixture) -> str:
    engine = engine_for(scripted_client(script))
    ledger = JobLedger(engine, "reindex", "books-v1", "books-v2", 4, share.of)
    dest = IndexHandle(engine, "books-v2", RankFeatures(ClusterVersion("opensearch", "2.19.6")))
    finish_share(dest, ledger, share, checkpoint.run, ShareCounts(10, 9, 1), None, "books-v1")
    return capsys.readouterr().err


def test_a_resumed_share_whose_run_was_recorded_does_not_start_the_jobs_next_run(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    document = LedgerDocument()
    script = ledger_cluster(document)
    first, second = Share(1, 2), Share(2, 2)

    run = share_run(tmp_path, first, resume=False)
    assert "share 1/2 done; the job waits for share(s) 2" in finish(script, first, run, capsys)
    resumed = share_run(tmp_path, first, resume=True)
    assert resumed.run == run.run
    assert "share 1/2 done; the job waits for share(s) 2" in finish(script, first, resumed, capsys)
    assert len(script.sent("PUT", DOC_PATH)) == 1

    said = finish(script, second, share_run(tmp_path, second, resume=False), capsys)
    assert "every share of books-v1 -> books-v2 is done (2 shares)" in said
    said = finish(script, second, share_run(tmp_path, second, resume=True), capsys)
    assert "every share of books-v1 -> books-v2 is done (2 shares)" in said
    assert len(script.sent("PUT", DOC_PATH)) == 2
    assert document.source["complete"] and set(document.source["done"]) == {"1", "2"}


def test_a_new_run_of_a_finished_job_starts_its_record_over(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    document = LedgerDocument()
    script = ledger_cluster(document)
    for share in (Share(1, 2), Share(2, 2)):
        finish(script, share, share_run(tmp_path, share, resume=False), capsys)
    assert document.source["complete"]

    said = finish(script, Share(2, 2), share_run(tmp_path, Share(2, 2), resume=False), capsys)
    assert "share 2/2 done; the job waits for share(s) 1" in said
    assert not document.source["complete"] and set(document.source["done"]) == {"2"}
