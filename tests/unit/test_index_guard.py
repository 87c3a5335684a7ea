"""The check after each batch that a job's index is the one it began with, over a scripted wire."""

from __future__ import annotations

import pytest

from milco_os.engines import ClusterVersion, engine_for
from milco_os.errors import IndexUnavailableError
from milco_os.index.handle import IndexHandle
from milco_os.index.vector_fields import RankFeatures
from milco_os.pipeline.index_guard import SameIndexGuard
from tests.unit.scripted_transport import Reply, Script, scripted_client

SETTINGS = "/books/_settings/index.uuid"


def settings(uuid: str) -> Reply:
    return Reply(200, {"books": {"settings": {"index": {"uuid": uuid}}}})


def guard(script: Script, uuid: str | None = "u-1") -> SameIndexGuard:
    field = RankFeatures(ClusterVersion("opensearch", "2.19.6"))
    return SameIndexGuard(IndexHandle(engine_for(scripted_client(script)), "books", field, uuid=uuid))


def test_the_same_index_passes_and_one_made_anew_stops_the_job() -> None:
    script = Script().expect("GET", SETTINGS, settings("u-1"), settings("u-2"))
    checked = guard(script)
    checked.check()
    with pytest.raises(IndexUnavailableError, match="index 'books' was deleted during the job, and the cluster made"):
        checked.check()


def test_an_index_gone_stops_the_job() -> None:
    script = Script().expect("GET", SETTINGS, Reply(404, {"error": {"type": "index_not_found_exception"}}))
    with pytest.raises(IndexUnavailableError, match="index 'books' was deleted during the job;"):
        guard(script).check()


@pytest.mark.parametrize("status", [403, 503])
def test_a_cluster_that_cannot_answer_now_is_checked_at_the_next_batch(status: int) -> None:
    script = Script().expect("GET", SETTINGS, Reply(status, {"error": {"type": "security_exception"}}),
                             settings("u-2"))
    checked = guard(script)
    checked.check()  # left to the bulk writer's wait
    with pytest.raises(IndexUnavailableError):
        checked.check()


def test_an_index_of_unknown_uuid_is_not_checked() -> None:
    script = Script()
    guard(script, uuid=None).check()
    assert script.requests == []
