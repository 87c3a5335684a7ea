"""``opensearch-ml install`` checks and bodies against a scripted cluster (the live tests are the ground truth)."""

from __future__ import annotations

import json

import pytest
from opensearchpy.exceptions import TransportError

from milco_os.cluster_ml.bodies import MlInstallation, connector_body, encode_pipeline_body
from milco_os.cluster_ml.installer import ML, MlCommons, MlSetupError, check_cluster, delete_connector
from tests.unit.scripted_transport import Reply, Script, error_reply, scripted_client

PLUGINS = [{"component": "opensearch-ml"}, {"component": "opensearch-neural-search"}]


def cluster(plugins: list[dict], settings: dict, roles: tuple[str, ...] = ("data", "ingest")) -> Script:
    return (Script().expect("GET", "/_cat/plugins", Reply(200, plugins))
            .expect("GET", "/_cluster/settings", Reply(200, {"persistent": {}, "transient": {}, "defaults": settings}))
            .expect("GET", "/_nodes/settings", Reply(200, {"nodes": {"n1": {"roles": list(roles)}}})))


def test_missing_plugins_are_named_before_anything_else() -> None:
    script = cluster([{"component": "opensearch-knn"}], {})
    with pytest.raises(MlSetupError, match=r"lacks the ml-commons plugin \(opensearch-ml\) and the neural-search"):
        check_cluster(scripted_client(script), MlInstallation())
    assert script.sent("GET", "/_cluster/settings") == []


def test_every_missing_setting_is_named_in_one_error() -> None:
    script = cluster(PLUGINS, {"plugins.ml_commons.trusted_connector_endpoints_regex": [r"^https://api\.openai\.com/"],
                               "plugins.ml_commons.connector.private_ip_enabled": "false",
                               "plugins.ml_commons.only_run_on_ml_node": "true"})
    with pytest.raises(MlSetupError) as error:
        check_cluster(scripted_client(script), MlInstallation(triton_url="http://127.0.0.1:8000"))
    message = str(error.value)
    assert "trusted_connector_endpoints_regex has no pattern matching http://127.0.0.1:8000/v2/models/milco/infer" \
        in message and '"^http://127\\.0\\.0\\.1:8000/.*$"' in message
    assert "private_ip_enabled must be true" in message and "no node has the ml role" in message
    assert error.value.exit_code == 6


def test_a_cluster_allowing_the_endpoint_passes() -> None:
    allowed = r"^http://127\.0\.0\.1(:[0-9]+)?/.*$"
    script = cluster(PLUGINS, {"plugins.ml_commons.trusted_connector_endpoints_regex": [allowed],
                               "plugins.ml_commons.connector.private_ip_enabled": "true",
                               "plugins.ml_commons.only_run_on_ml_node": "true"}, roles=("data", "ml"))
    check_cluster(scripted_client(script), MlInstallation(triton_url="http://127.0.0.1:8000/"))


def test_bodies_carry_the_installation() -> None:
    installation = MlInstallation(triton_url="http://triton:8000", triton_model="milco-560m", name="prod",
                                  prune="topk:64", max_length=256, text_field="body", batch_size=16,
                                  fingerprint="ab" * 32)
    connector = connector_body(installation, "m")
    assert connector["name"] == "prod-m"
    assert connector["actions"][0]["url"] == "http://triton:8000/v2/models/milco-560m/infer"
    assert connector["parameters"] == {"view": "m", "prune": "topk:64", "max_length": "256",
                                       "input_docs_processed_step_size": "16"}
    request = connector["actions"][0]["request_body"]
    filled = request.replace("${parameters.count}", "2").replace("${parameters.texts}", '["a","b"]')
    filled = filled.replace("${parameters.view}", "m").replace("${parameters.prune}", "topk:64")
    assert json.loads(filled.replace("${parameters.max_length}", "256"))["inputs"][0]["shape"] == [2, 1]

    pipeline = encode_pipeline_body(installation, {"en": "E", "m": "M"})
    encoders = [p["sparse_encoding"] for p in pipeline["processors"] if "sparse_encoding" in p]
    assert [(e["model_id"], e["field_map"], e["batch_size"]) for e in encoders] == [
        ("E", {"body": "milco_en"}, 16), ("M", {"body": "milco_m"}, 16)]
    assert "prod-en (E, Triton http://triton:8000/v2/models/milco-560m/infer)" in \
        encoders[0]["on_failure"][0]["fail"]["message"]
    (meta,) = [p["script"] for p in pipeline["processors"] if "script" in p]
    assert meta["params"] == {"text_field": "body", "model": "triton:milco-560m", "prune": "topk:64",
                              "model_revision": "ab" * 32}


@pytest.mark.parametrize("url", ["127.0.0.1:8000", "http://triton:8000/v2", "ftp://triton"])
def test_a_triton_url_that_is_not_scheme_host_port_is_refused(url: str) -> None:
    with pytest.raises(Exception, match="--triton-url must be http"):
        MlInstallation(triton_url=url)


def still_used(*model_ids: str) -> Reply:
    """ml-commons 2.19's refusal to delete a connector, naming the models it counts as users."""
    return error_reply(409, "status_exception", f"{len(model_ids)} models are still using this connector, please "
                       f"delete or update the models first: [{', '.join(model_ids)}]")


def test_a_connector_refused_for_other_connectors_models_is_left_with_the_reason() -> None:
    script = (Script().expect("DELETE", f"{ML}/connectors/c-1", still_used("m-7", "m-8"))
              .expect("GET", f"{ML}/models/m-7", Reply(200, {"name": "other-en", "connector_id": "c-2"}))
              .expect("GET", f"{ML}/models/m-8", error_reply(404, "status_exception", "Failed to find model")))
    outcome = delete_connector(MlCommons(scripted_client(script)), "c-1")
    assert outcome.startswith("left: ml-commons counts 2 model(s) as using it (m-7, m-8), but none of them does")
    assert f"DELETE {ML}/connectors/c-1" in outcome
    assert not script.unused()


def test_a_connector_a_listed_model_really_uses_is_an_error() -> None:
    script = (Script().expect("DELETE", f"{ML}/connectors/c-1", still_used("m-7", "m-8"))
              .expect("GET", f"{ML}/models/m-7", Reply(200, {"name": "other-en", "connector_id": "c-2"}))
              .expect("GET", f"{ML}/models/m-8", Reply(200, {"name": "mine-en", "connector_id": "c-1"})))
    with pytest.raises(TransportError, match="2 models are still using this connector"):
        delete_connector(MlCommons(scripted_client(script)), "c-1")
    removed = Script().expect("DELETE", f"{ML}/connectors/c-1", Reply(200, {"result": "deleted"}))
    assert delete_connector(MlCommons(scripted_client(removed)), "c-1") == "removed"
