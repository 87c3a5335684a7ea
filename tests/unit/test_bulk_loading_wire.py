"""Holding a vector field's loading settings over a scripted wire: a cluster that refuses them loads under its own
(with a warning), one that cannot take them back says so without hiding the job's own failure, and a field with
none sends nothing. tests/integration/test_bulk_loading.py is the ground truth on a real node."""

from __future__ import annotations

import pytest

from milco_os.engines import ClusterVersion, engine_for
from milco_os.index.handle import IndexHandle
from milco_os.index.vector_fields import RankFeatures, Seismic
from milco_os.pipeline.bulk_loading import LOADING_META, bulk_loading, put_back_loading
from tests.unit.scripted_transport import Reply, Request, Script, error_reply, scripted_client

VERSION = ClusterVersion("opensearch", "3.6.0")
MODEL = {"model": {"name": "milco"}}


class FakeIndex:
    """The mapping ``_meta`` and settings of one index, as the cluster keeps them."""

    def __init__(self) -> None:
        self.meta: dict = {"milco_os": dict(MODEL)}
        self.settings: dict = {"index.refresh_interval": "5s"}

    def script(self, put_settings: list[Reply] = ()) -> Script:
        return (Script()
                .respond("GET", "/books/_mapping", lambda r: Reply(200, {"books": {"mappings": {"_meta": self.meta}}}))
                .respond("PUT", "/books/_mapping", self.put_mapping)
                .respond("GET", "/books/_settings", lambda r: Reply(200, {"books": {"settings": self.settings}}))
                .expect("PUT", "/books/_settings", *put_settings))

    def put_mapping(self, request: Request) -> Reply:
        self.meta = request.body["_meta"]
        return Reply(200, {"acknowledged": True})


def handle(script: Script, field: type = Seismic) -> IndexHandle:
    return IndexHandle(engine_for(scripted_client(script)), "books", field(VERSION))


def test_a_refused_change_loads_under_the_indexs_own_settings_and_says_why() -> None:
    index = FakeIndex()
    script = index.script([error_reply(403, "security_exception", "no permissions for [indices:admin/settings]")])
    notices: list[str] = []
    with bulk_loading(handle(script), notices.append):
        ran = True
    assert ran and len(notices) == 1
    assert "index 'books': loading under its own settings" in notices[0] and "no permissions" in notices[0]
    assert index.meta == {"milco_os": MODEL}  # the record of what to put back is gone: nothing changed
    assert len(script.sent("PUT", "/books/_settings")) == 1


def test_settings_that_cannot_be_put_back_are_told_and_the_jobs_own_error_kept() -> None:
    index = FakeIndex()
    script = index.script([Reply(200, {"acknowledged": True}),
                           error_reply(403, "security_exception", "no permissions now")])
    notices: list[str] = []
    with pytest.raises(RuntimeError, match="the source broke"):
        with bulk_loading(handle(script), notices.append):
            raise RuntimeError("the source broke")
    assert len(notices) == 1 and "the next job into it puts its own settings back" in notices[0]
    assert index.meta["milco_os"][LOADING_META] == {"refresh_interval": "5s"}  # kept for that next job
    held, put_back = (request.body for request in script.sent("PUT", "/books/_settings"))
    assert held == {"index.refresh_interval": "1s", "index.merge.policy.max_merged_segment": "256mb"}
    assert put_back == {"index.refresh_interval": "5s", "index.merge.policy.max_merged_segment": None}


def test_an_error_that_is_no_clusters_is_not_taken_for_a_refusal() -> None:
    script = FakeIndex().script()
    script.respond("PUT", "/books/_settings", lambda request: (_ for _ in ()).throw(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        with bulk_loading(handle(script), lambda line: None):
            pass


def test_a_field_without_loading_settings_sends_nothing() -> None:
    script = Script()
    with bulk_loading(handle(script, RankFeatures)):
        pass
    assert script.requests == []


def test_a_share_leaves_the_settings_recorded_for_the_share_that_completes_the_job() -> None:
    index = FakeIndex()
    script = index.script([Reply(200, {"acknowledged": True}), Reply(200, {"acknowledged": True})])
    share = handle(script)
    with bulk_loading(share, put_back=False):
        pass
    assert index.meta["milco_os"][LOADING_META] == {"refresh_interval": "5s"}
    assert len(script.sent("PUT", "/books/_settings")) == 1  # held, not put back
    put_back_loading(share)
    assert script.sent("PUT", "/books/_settings")[-1].body == {"index.refresh_interval": "5s",
                                                               "index.merge.policy.max_merged_segment": None}
    assert index.meta == {"milco_os": MODEL}
    put_back_loading(share)  # a finished share resumed: nothing recorded, nothing put
    assert len(script.sent("PUT", "/books/_settings")) == 2
