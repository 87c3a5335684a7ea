"""setup's pipelines over a scripted wire: a cluster that will not list its ingest processors (OpenSearch
Serverless has no ``_nodes`` API; a role may lack it) gets its index without the stamp pipeline, said in the
outcome, instead of no index at all; any other failure still stops setup."""

from __future__ import annotations

import pytest
from opensearchpy.exceptions import TransportError

from milco_os.index.setup import ensure_index, ensure_pipelines
from tests.unit.scripted_transport import Reply, Script, error_reply, opensearch_info, scripted_client

NODES = "/_nodes/ingest"


@pytest.mark.parametrize("refusal", [Reply(404, {"message": "Not Found"}),
                                     error_reply(403, "security_exception", "no permissions for [cluster:monitor]"),
                                     error_reply(400, "illegal_argument_exception", "unsupported API")])
def test_a_cluster_that_does_not_list_its_processors_gets_an_index_without_the_pipeline(refusal: Reply) -> None:
    script = (Script().expect("GET", NODES, refusal, refusal)
              .respond("GET", "/", lambda request: opensearch_info("2.19.6"))
              .expect("HEAD", "/books", Reply(404))
              .expect("PUT", "/books", Reply(200, {"acknowledged": True, "index": "books"})))
    outcomes = ensure_pipelines(scripted_client(script))
    assert outcomes and all(outcome.startswith("skipped: the cluster does not list its ingest processors")
                            for outcome in outcomes.values())
    handle, outcome = ensure_index(scripted_client(script), "books", replicas=0)
    created, = script.sent("PUT", "/books")
    assert outcome == "created" and "default_pipeline" not in created.body["settings"]["index"]
    assert handle.bulk_pipeline is None
    assert not script.sent("PUT", "/_ingest/pipeline/milco-stamp")


def test_any_other_failure_to_list_them_stops_setup() -> None:
    script = Script().expect("GET", NODES, error_reply(500, "exception", "node failure"))
    with pytest.raises(TransportError):
        ensure_pipelines(scripted_client(script))
