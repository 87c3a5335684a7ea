"""Installing and removing what lets OpenSearch encode with MILCO on Triton (ml-commons, neural-search).

``install`` is idempotent: each object is looked up by its name first and made only when
missing; pipelines are written only when their body differs. ``uninstall`` removes the
objects of one installation by name: the pipelines, then in the order ml-commons allows
(undeploy, models, connectors, model group).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from opensearchpy.exceptions import NotFoundError, TransportError

from milco_os.cluster_ml.bodies import (
    MADE_BY,
    VIEW_FIELDS,
    MlInstallation,
    connector_body,
    encode_pipeline_body,
    model_body,
    search_pipeline_body,
)
from milco_os.errors import MilcoOsError
from milco_os.index.handle import STAMP_PIPELINE
from milco_os.index.model_record import ModelRecord
from milco_os.index.setup import ensure_pipelines

ML = "/_plugins/_ml"
REQUIRED_PLUGINS = {"opensearch-ml": "ml-commons", "opensearch-neural-search": "neural-search"}
DEPLOY_TIMEOUT_S = 60.0
SMOKE_TEXT = "MILCO encodes this text to check the connector."
# ml-commons' refusal to delete a connector, listing the models it counts as users (2.14+).
STILL_USED = re.compile(r"models are still using this connector[^\[]*\[([^\]]*)\]")


class MlSetupError(MilcoOsError):
    """The cluster cannot run remote MILCO models as it is configured (missing plugin or setting)."""

    exit_code = 6


@dataclass
class InstallReport:
    """Ids of what the installation uses, and what this run did to each object (made, existing, updated)."""

    model_group_id: str = ""
    connector_ids: dict[str, str] = field(default_factory=dict)
    model_ids: dict[str, str] = field(default_factory=dict)
    encode_pipeline: str = ""
    search_pipeline: str = ""
    actions: dict[str, str] = field(default_factory=dict)


class MlCommons:
    """The ml-commons REST calls an installation needs (through opensearch-py's transport)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        return self.client.transport.perform_request(method, path, body=body)

    def find(self, kind: str, name: str) -> list[dict]:
        """Objects of ``kind`` (connectors, models, model_groups) named exactly ``name``, with their ``_id``."""
        query = {"query": {"term": {"name.keyword": name}}, "size": 100}
        try:
            hits = self.request("POST", f"{ML}/{kind}/_search", query)["hits"]["hits"]
        except NotFoundError:  # the system index does not exist until the first object of its kind
            return []
        # Model searches also return the chunks of uploaded models; remote models have none.
        return [{**hit["_source"], "_id": hit["_id"]} for hit in hits if "chunk_number" not in hit["_source"]]

    def model_state(self, model_id: str) -> str:
        return self.request("GET", f"{ML}/models/{model_id}").get("model_state", "")

    def model_connector(self, model_id: str) -> str | None:
        """The connector a model uses; None when it has none or is gone."""
        try:
            return self.request("GET", f"{ML}/models/{model_id}").get("connector_id")
        except NotFoundError:
            return None

    def predict(self, model_id: str, texts: list[str]) -> list[dict]:
        """What neural-search gets for ``texts``: one term -> weight map per text."""
        response = self.request("POST", f"{ML}/_predict/text_embedding/{model_id}", {"text_docs": texts})
        return [weights for result in response["inference_results"] for tensor in result["output"]
                for weights in tensor["dataAsMap"]["response"]]

    def deploy(self, model_id: str, timeout: float = DEPLOY_TIMEOUT_S) -> None:
        """Deploy ``model_id`` and wait until ml-commons reports it deployed."""
        self.request("POST", f"{ML}/models/{model_id}/_deploy")
        deadline = time.monotonic() + timeout
        while (state := self.model_state(model_id)) != "DEPLOYED":
            if state == "DEPLOY_FAILED" or time.monotonic() > deadline:
                raise MilcoOsError(f"ml-commons did not deploy model {model_id} (state {state or 'unknown'}).",
                                   hint="see the cluster log for the reason.")
            time.sleep(0.5)


def plugin_names(client: Any) -> set[str]:
    return {row["component"] for row in client.cat.plugins(format="json")}


def check_cluster(client: Any, installation: MlInstallation) -> None:
    """One MlSetupError naming every missing plugin or setting the installation needs."""
    installed = plugin_names(client)
    missing = [f"the {title} plugin ({name})" for name, title in REQUIRED_PLUGINS.items() if name not in installed]
    if missing:
        raise MlSetupError(f"The cluster lacks {' and '.join(missing)}.",
                           hint="install them on every node (or run 'milco-os dev-cluster start --ml').")
    settings = client.cluster.get_settings(include_defaults=True, flat_settings=True)
    merged = {**settings.get("defaults", {}), **settings.get("persistent", {}), **settings.get("transient", {})}
    problems = []
    patterns = merged.get("plugins.ml_commons.trusted_connector_endpoints_regex") or []
    if not any(re.fullmatch(pattern, installation.endpoint) for pattern in patterns):
        problems.append(f"plugins.ml_commons.trusted_connector_endpoints_regex has no pattern matching "
                        f"{installation.endpoint} (add one, e.g. \"^{re.escape(installation.triton_url)}/.*$\", "
                        f"to opensearch.yml: the setting is static)")
    if str(merged.get("plugins.ml_commons.connector.private_ip_enabled", "false")) != "true" \
            and private_host(installation.triton_url):
        problems.append("plugins.ml_commons.connector.private_ip_enabled must be true to reach a Triton on a "
                        "private or loopback address (PUT _cluster/settings)")
    if str(merged.get("plugins.ml_commons.only_run_on_ml_node", "true")) == "true" and not has_ml_node(client):
        problems.append("plugins.ml_commons.only_run_on_ml_node is true but no node has the ml role "
                        "(set it to false, or add an ml node)")
    if problems:
        raise MlSetupError("The cluster cannot call Triton as configured: " + "; ".join(problems) + ".")


def private_host(url: str) -> bool:
    """True when ``url``'s host resolves to a private, loopback or link-local address."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def has_ml_node(client: Any) -> bool:
    nodes = client.nodes.info(metric="settings")["nodes"].values()
    return any("ml" in node.get("roles", []) for node in nodes)


def install(client: Any, installation: MlInstallation,
            on_step: Callable[[str], None] = lambda step: None) -> InstallReport:
    """Make (or find) the model group, a connector and a deployed remote model per view, and the pipelines."""
    check_cluster(client, installation)
    ml = MlCommons(client)
    report = InstallReport()
    ensure_pipelines(client)
    report.model_group_id = ensure_model_group(ml, installation, report)
    for view in VIEW_FIELDS:
        on_step(f"connector and model {installation.model_name(view)}")
        connector_id = ensure_connector(ml, installation, view, report)
        report.connector_ids[view] = connector_id
        report.model_ids[view] = ensure_model(ml, installation, view, connector_id, report)
    on_step("pipelines")
    put_if_changed(client, "ingest", installation.encode_pipeline,
                   encode_pipeline_body(installation, report.model_ids), report)
    put_if_changed(client, "search", installation.search_pipeline, search_pipeline_body(), report)
    report.encode_pipeline, report.search_pipeline = installation.encode_pipeline, installation.search_pipeline
    return report


def ensure_model_group(ml: MlCommons, installation: MlInstallation, report: InstallReport) -> str:
    found = ml.find("model_groups", installation.name)
    if found:
        report.actions[f"model group {installation.name}"] = "exists"
        return found[0]["_id"]
    response = ml.request("POST", f"{ML}/model_groups/_register",
                          {"name": installation.name, "description": f"MILCO on Triton. {MADE_BY}"})
    report.actions[f"model group {installation.name}"] = "made"
    return response["model_group_id"]


def connector_differences(stored: dict, wanted: dict) -> list[str]:
    """What of ``wanted`` a stored connector does not have (its URL, parameters, request and scripts)."""
    differences = [f"parameters.{key}" for key, value in wanted["parameters"].items()
                   if str(stored.get("parameters", {}).get(key)) != value]
    stored_action, wanted_action = (stored.get("actions") or [{}])[0], wanted["actions"][0]
    differences += [f"actions.{key}" for key in ("url", "request_body", "pre_process_function",
                                                 "post_process_function")
                    if stored_action.get(key) != wanted_action[key]]
    return differences


def ensure_connector(ml: MlCommons, installation: MlInstallation, view: str, report: InstallReport) -> str:
    name = installation.model_name(view)
    wanted = connector_body(installation, view)
    found = ml.find("connectors", name)
    if found:
        differences = connector_differences(found[0], wanted)
        if differences:
            raise MlSetupError(f"Connector {name} ({found[0]['_id']}) exists with another {', '.join(differences)}.",
                               hint=f"run 'milco-os opensearch-ml uninstall --name {installation.name}' first, or "
                                    "install under another --name.")
        report.actions[f"connector {name}"] = "exists"
        return found[0]["_id"]
    response = ml.request("POST", f"{ML}/connectors/_create", wanted)
    report.actions[f"connector {name}"] = "made"
    return response["connector_id"]


def ensure_model(ml: MlCommons, installation: MlInstallation, view: str, connector_id: str,
                 report: InstallReport) -> str:
    name = installation.model_name(view)
    found = [model for model in ml.find("models", name) if model.get("connector_id") == connector_id]
    if found:
        model_id = found[0]["_id"]
        report.actions[f"model {name}"] = "exists"
    else:
        model_id = ml.request("POST", f"{ML}/models/_register",
                              model_body(installation, view, connector_id, report.model_group_id))["model_id"]
        report.actions[f"model {name}"] = "made"
    if ml.model_state(model_id) != "DEPLOYED":
        ml.deploy(model_id)
        report.actions[f"model {name}"] += ", deployed"
    check_model_answers(ml, installation, view, model_id)
    return model_id


def check_model_answers(ml: MlCommons, installation: MlInstallation, view: str, model_id: str) -> None:
    """One text through the deployed model, so a wrong URL or model name is reported now, not at the first write."""
    try:
        answer = ml.predict(model_id, [SMOKE_TEXT])
    except TransportError as exc:
        raise MlSetupError(f"Model {installation.model_name(view)} ({model_id}) is deployed, but the cluster could not "
                           f"encode through Triton at {installation.endpoint}: {error_reason(exc)}",
                           hint="check --triton-url (as the cluster's nodes reach it), --triton-model, and that "
                                "Triton serves the model.") from exc
    if len(answer) != 1 or not isinstance(answer[0], dict):
        raise MlSetupError(f"Model {installation.model_name(view)} ({model_id}) answered {answer!r:.200} for one text, "
                           "not one term -> weight map.")


def error_reason(exc: TransportError) -> str:
    """The cluster's own reason for a refused request."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    return str(error.get("reason", error) if isinstance(error, dict) else error or exc.error)


def put_if_changed(client: Any, kind: str, name: str, body: dict, report: InstallReport) -> None:
    """Write an ingest or search pipeline unless the cluster holds exactly ``body`` already."""
    path = f"/_ingest/pipeline/{name}" if kind == "ingest" else f"/_search/pipeline/{name}"
    try:
        stored = client.transport.perform_request("GET", path).get(name)
    except NotFoundError:
        stored = None
    if stored == body:
        report.actions[f"{kind} pipeline {name}"] = "exists"
        return
    client.transport.perform_request("PUT", path, body=body)
    report.actions[f"{kind} pipeline {name}"] = "made" if stored is None else "updated"


def installed_model_ids(client: Any, name: str) -> dict[str, str]:
    """View -> remote model id of the installation ``name``; a MilcoOsError when a view's model is missing."""
    ml = MlCommons(client)
    ids = {}
    for view in VIEW_FIELDS:
        found = ml.find("models", f"{name}-{view}")
        if not found:
            raise MilcoOsError(f"The cluster has no model {name}-{view}.",
                               hint=f"run 'milco-os opensearch-ml install --name {name}' first.")
        ids[view] = found[0]["_id"]
    return ids


def installed_model(client: Any, name: str) -> ModelRecord:
    """The model the installation ``name`` encodes with, as its ingest pipeline writes it into ``milco_meta`` (the
    fingerprint None where the install could not read it from Triton)."""
    pipeline = MlInstallation(name=name).encode_pipeline
    try:
        stored = client.transport.perform_request("GET", f"/_ingest/pipeline/{pipeline}").get(pipeline, {})
    except NotFoundError:
        raise MilcoOsError(f"The cluster has no ingest pipeline {pipeline}.",
                           hint=f"run 'milco-os opensearch-ml install --name {name}' first.") from None
    params = next((processor["script"].get("params", {}) for processor in stored.get("processors", [])
                   if "script" in processor), {})
    return ModelRecord(str(params.get("model") or name), params.get("model_revision") or None)


def indices_using_pipeline(client: Any, pipeline: str) -> list[str]:
    settings = client.indices.get_settings(index="*", name="index.default_pipeline")
    return sorted(index for index, body in settings.items()
                  if body.get("settings", {}).get("index", {}).get("default_pipeline") == pipeline)


def delete_connector(ml: MlCommons, connector_id: str) -> str:
    """Delete a connector no model of ours uses any more: 'removed', or why it was left.

    ml-commons 2.x finds a connector's users with an analysed match on ``connector_id``, so a model of another
    installation whose connector id shares a token with this one (ids made in the same moment, split at a '-')
    counts as a user, and the delete is refused with 409. When none of the models it names really uses this
    connector, it is left and reported; a real user is an error as before."""
    path = f"{ML}/connectors/{connector_id}"
    try:
        ml.request("DELETE", path)
        return "removed"
    except TransportError as exc:
        listed = STILL_USED.search(error_reason(exc)) if exc.status_code == 409 else None
        named = [model_id.strip() for model_id in listed.group(1).split(",") if model_id.strip()] if listed else []
        if not named or any(ml.model_connector(model_id) == connector_id for model_id in named):
            raise
    return (f"left: ml-commons counts {len(named)} model(s) as using it ({', '.join(named)}), but none of them "
            f"does (its check matches connector ids loosely); remove it with DELETE {path} once they are gone")


def uninstall(client: Any, name: str) -> dict[str, str]:
    """Remove what ``install`` made under ``name``; object -> 'removed' or why it was left (absent objects are not
    listed)."""
    ml = MlCommons(client)
    removed: dict[str, str] = {}
    for index in indices_using_pipeline(client, f"{name}-encode"):
        client.indices.put_settings(index=index, body={"index.default_pipeline": STAMP_PIPELINE})
        removed[f"index {index}: default pipeline {name}-encode"] = f"replaced by {STAMP_PIPELINE}"
    for path, label in ((f"/_ingest/pipeline/{name}-encode", "ingest pipeline"),
                        (f"/_search/pipeline/{name}-two-phase", "search pipeline")):
        try:
            client.transport.perform_request("DELETE", path)
            removed[f"{label} {path.rsplit('/', 1)[1]}"] = "removed"
        except NotFoundError:
            pass
    for view in VIEW_FIELDS:
        model_name = f"{name}-{view}"
        for model in ml.find("models", model_name):
            if model.get("model_state") not in (None, "", "REGISTERED", "UNDEPLOYED", "DEPLOY_FAILED"):
                ml.request("POST", f"{ML}/models/{model['_id']}/_undeploy")
            ml.request("DELETE", f"{ML}/models/{model['_id']}")
            removed[f"model {model_name} ({model['_id']})"] = "removed"
        for connector in ml.find("connectors", model_name):
            removed[f"connector {model_name} ({connector['_id']})"] = delete_connector(ml, connector["_id"])
    for group in ml.find("model_groups", name):
        ml.request("DELETE", f"{ML}/model_groups/{group['_id']}")
        removed[f"model group {name} ({group['_id']})"] = "removed"
    return removed
