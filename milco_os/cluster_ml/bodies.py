"""The bodies of ``opensearch_ml/`` (connector, pipelines), filled in for one installation.

Everything an installation makes is named after its ``name`` (default ``milco-os``): the
model group ``NAME``, a connector and a remote model per view (``NAME-en``, ``NAME-m``),
the ingest pipeline ``NAME-encode`` and the search pipeline ``NAME-two-phase``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from urllib.parse import urlsplit

from milco_os.encoding.pruning import PruneSpec
from milco_os.errors import MilcoOsError
from milco_os.index.fields import EN_FIELD, M_FIELD
from milco_os.resources import load_json

RESOURCES = "opensearch_ml"
VIEW_FIELDS = {"en": EN_FIELD, "m": M_FIELD}
MADE_BY = "Made by milco-os opensearch-ml install."


@dataclass(frozen=True)
class MlInstallation:
    """What one ``opensearch-ml install`` makes: where the cluster reaches Triton, and how texts are encoded."""

    triton_url: str = "http://127.0.0.1:8000"
    triton_model: str = "milco"
    name: str = "milco-os"
    prune: PruneSpec | str = PruneSpec()
    max_length: int | None = None
    text_field: str = "text"
    batch_size: int = 32
    fingerprint: str | None = None  # the served checkpoint's (read from Triton's model configuration), where known

    def __post_init__(self) -> None:
        object.__setattr__(self, "prune", PruneSpec.parse(self.prune))
        object.__setattr__(self, "triton_url", self.triton_url.rstrip("/"))
        parts = urlsplit(self.triton_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise MilcoOsError(f"--triton-url must be http(s)://HOST:PORT as the cluster reaches Triton, "
                               f"not {self.triton_url!r}")

    @property
    def endpoint(self) -> str:
        return f"{self.triton_url}/v2/models/{self.triton_model}/infer"

    def model_name(self, view: str) -> str:
        return f"{self.name}-{view}"

    @property
    def encoder_name(self) -> str:
        """The model's name in ``milco_meta`` and an index's record, as the Triton client names it."""
        return f"triton:{self.triton_model}"

    @property
    def encode_pipeline(self) -> str:
        return f"{self.name}-encode"

    @property
    def search_pipeline(self) -> str:
        return f"{self.name}-two-phase"


def connector_body(installation: MlInstallation, view: str) -> dict:
    """``triton-connector.json`` for one view of this installation."""
    body = load_json(RESOURCES, "triton-connector.json")
    body["name"] = installation.model_name(view)
    body["parameters"].update(view=view, prune=str(installation.prune),
                              max_length=str(installation.max_length or ""),
                              input_docs_processed_step_size=str(installation.batch_size))
    body["actions"][0]["url"] = installation.endpoint
    return body


def model_body(installation: MlInstallation, view: str, connector_id: str, model_group_id: str) -> dict:
    """The remote model of one view."""
    return {"name": installation.model_name(view), "function_name": "remote", "model_group_id": model_group_id,
            "connector_id": connector_id,
            "description": f"MILCO view {view} ({VIEW_FIELDS[view]}) on Triton {installation.endpoint}. {MADE_BY}"}


def encode_pipeline_body(installation: MlInstallation, model_ids: dict[str, str]) -> dict:
    """``encode-pipeline.json`` with this installation's models, text field and milco_meta values."""
    body = copy.deepcopy(load_json(RESOURCES, "encode-pipeline.json"))
    for processor in body["processors"]:
        if "sparse_encoding" in processor:
            encoding = processor["sparse_encoding"]
            (field,) = encoding["field_map"].values()
            view = next(view for view, name in VIEW_FIELDS.items() if name == field)
            encoding.update(model_id=model_ids[view], field_map={installation.text_field: field},
                            batch_size=installation.batch_size)
            encoding["on_failure"][0]["fail"]["message"] = (
                f"MILCO model {installation.model_name(view)} ({model_ids[view]}, Triton {installation.endpoint}) "
                f"could not encode field {installation.text_field}: {{{{{{ _ingest.on_failure_message }}}}}}")
        elif "script" in processor:
            processor["script"]["params"].update(text_field=installation.text_field,
                                                 model=installation.encoder_name,
                                                 model_revision=installation.fingerprint or "",
                                                 prune=str(installation.prune))
    return body


def search_pipeline_body() -> dict:
    return load_json(RESOURCES, "two-phase-search-pipeline.json")
