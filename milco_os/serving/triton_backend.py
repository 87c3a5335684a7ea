"""The Triton python-backend model that serves MILCO (``triton_models/milco/1/model.py`` imports it).

One request carries a batch of texts (``TEXT``, UTF-8 bytes); the response carries, per
text, its term ids and weights of each view padded to the longest in that request
(``EN_IDS``/``EN_WEIGHTS``/``EN_COUNT``, ``M_IDS``/``M_WEIGHTS``/``M_COUNT``): bytes on
the wire scale with the active terms, never with the vocabulary. Requests that ask for
the ``EN_VOCAB``/``M_VOCAB`` outputs get the piece names instead, once per client.

Requests that ask for ``SPARSE_JSON`` (what an OpenSearch ml-commons connector calls) get,
per text, one JSON object of ``rank_features`` key -> weight for the view the request
parameter ``view`` names (``en``, the default, or ``m``): the same keys and weights the
milco-os bulk writer stores in ``milco_en`` / ``milco_m``.

Model parameters (``config.pbtxt``): ``checkpoint`` (a directory; relative paths are
relative to the model version folder), and defaults for ``prune``, ``max_length``,
``echo`` and ``precision``. Request parameters ``prune``, ``max_length`` and ``echo``
(and ``view``) override the defaults for one request. A bad request gets its own error response;
the rest of the batch goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.encoding.triton_wire import VECTOR_OUTPUTS, VOCAB_OUTPUTS, vector_arrays
from milco_os.index.fields import EN_FIELD, M_FIELD, vector_fields

CLUSTER_OUTPUT = "SPARSE_JSON"
VIEW_FIELDS = {"en": EN_FIELD, "m": M_FIELD}


class BadRequest(ValueError):
    """A request the model cannot answer; its message goes back to the client."""


@dataclass(frozen=True)
class EncodeSettings:
    """How one request is encoded: the model defaults, overridden by request parameters."""

    prune: PruneSpec
    max_length: int | None
    echo: bool

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> EncodeSettings:
        try:
            prune = PruneSpec.parse(parameters.get("prune") or "none")
        except ValueError as exc:
            raise BadRequest(f"parameter prune: {exc}") from exc
        max_length = str(parameters.get("max_length") or "").strip()
        if max_length and (not max_length.isdigit() or int(max_length) < 2):
            raise BadRequest(f"parameter max_length must be an integer >= 2, not {max_length!r}")
        echo = str(parameters.get("echo", "true")).strip().lower()
        if echo not in ("true", "false", "1", "0"):
            raise BadRequest(f"parameter echo must be true or false, not {echo!r}")
        return cls(prune, int(max_length) if max_length else None, echo in ("true", "1"))

    def key(self) -> tuple[str, int | None, bool]:
        return str(self.prune), self.max_length, self.echo


def decode_texts(array: np.ndarray) -> list[str]:
    """The texts of a ``TEXT`` input ([batch, 1] bytes); a BadRequest naming the first invalid one."""
    if array.size == 0:
        raise BadRequest("the request holds no text (empty batch)")
    texts = []
    for position, item in enumerate(array.reshape(-1)):
        raw = item if isinstance(item, bytes) else str(item).encode("utf-8")
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRequest(f"text {position} is not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    return texts


def requested_view(parameters: dict[str, str]) -> str:
    """The view a ``SPARSE_JSON`` request asks for (``en`` unless the ``view`` parameter says ``m``)."""
    view = str(parameters.get("view") or "en").strip().lower()
    if view not in VIEW_FIELDS:
        raise BadRequest(f"parameter view must be en or m, not {view!r}")
    return view


def sparse_json(vectors: list[SparseVector], vocabulary: TermVocabulary, view: str) -> np.ndarray:
    """``SPARSE_JSON`` ([batch, 1] bytes): per text, its ``view`` as a JSON object of key -> weight."""
    field = VIEW_FIELDS[view]
    # ASCII only (\uXXXX escapes): ml-commons decodes a response chunk by chunk, so a multi-byte character split
    # across two chunks would reach the index as replacement characters.
    rows = [json.dumps(vector_fields(vector, vocabulary).get(field, {}), separators=(",", ":")).encode("ascii")
            for vector in vectors]
    return np.array(rows, dtype=np.object_).reshape(len(rows), 1)


def resolve_checkpoint(value: str, version_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else version_dir / path


def model_parameters(model_config: dict) -> dict[str, str]:
    return {key: entry.get("string_value", "") for key, entry in model_config.get("parameters", {}).items()}


def request_parameters(request) -> dict[str, str]:
    raw = request.parameters()
    parameters = json.loads(raw) if raw else {}
    return {key: str(value) for key, value in parameters.items()}


class MilcoTritonModel:
    """``TritonPythonModel`` for MILCO: the same encoder as in-process encoding, on the instance's device."""

    def initialize(self, args: dict) -> None:
        import triton_python_backend_utils as pb_utils

        from milco_os.model import MilcoEncoder

        self.pb_utils = pb_utils
        config = json.loads(args["model_config"])
        self.defaults = model_parameters(config)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        checkpoint = resolve_checkpoint(self.defaults.get("checkpoint") or "checkpoint", version_dir)
        device = f"cuda:{args['model_instance_device_id']}" if args["model_instance_kind"] == "GPU" else "cpu"
        self.encoder = MilcoEncoder.from_pretrained(checkpoint, device=device,
                                                    precision=self.defaults.get("precision") or "auto")
        self.default_settings = EncodeSettings.from_parameters(self.defaults)

    def execute(self, requests: list) -> list:
        """One response per request, in order; requests sharing settings are encoded together."""
        pb_utils = self.pb_utils
        responses: list = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, list[str], str | None]]] = {}
        settings_by_key: dict[tuple, EncodeSettings] = {}
        for index, request in enumerate(requests):
            try:
                requested = set(request.requested_output_names())
                if requested and requested <= set(VOCAB_OUTPUTS):
                    responses[index] = self._vocabulary_response()
                    continue
                parameters = {**self.defaults, **request_parameters(request)}
                settings = EncodeSettings.from_parameters(parameters)
                view = requested_view(parameters) if CLUSTER_OUTPUT in requested else None
                tensor = pb_utils.get_input_tensor_by_name(request, "TEXT")
                if tensor is None:
                    raise BadRequest("input TEXT is missing")
                texts = decode_texts(tensor.as_numpy())
            except BadRequest as exc:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
                continue
            groups.setdefault(settings.key(), []).append((index, texts, view))
            settings_by_key[settings.key()] = settings
        for key, members in groups.items():
            settings = settings_by_key[key]
            texts = [text for _, request_texts, _ in members for text in request_texts]
            vectors = iter(self.encoder.encode(texts, max_length=settings.max_length, prune=settings.prune,
                                               echo=settings.echo))
            for index, request_texts, view in members:
                responses[index] = self._vectors_response([next(vectors) for _ in request_texts], view)
        return responses

    def _vectors_response(self, vectors: list[SparseVector], view: str | None):
        """The milco-os wire format, or with a ``view`` the cluster's ``SPARSE_JSON``."""
        pb_utils = self.pb_utils
        if view is not None:
            array = sparse_json(vectors, self.encoder.vocabulary, view)
            return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(CLUSTER_OUTPUT, array)])
        arrays = vector_arrays(vectors)
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, arrays[name])
                                                          for name in VECTOR_OUTPUTS])

    def _vocabulary_response(self):
        pb_utils = self.pb_utils
        vocabulary = self.encoder.vocabulary
        tensors = [pb_utils.Tensor(name, np.array([[piece.encode("utf-8") for piece in pieces]], dtype=np.object_))
                   for name, pieces in (("EN_VOCAB", vocabulary.en_pieces), ("M_VOCAB", vocabulary.m_pieces))]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.encoder = None
