"""``TritonEncoder``: MILCO encoding through a Triton server, with the in-process encoder's interface.

Work is split into requests of at most ``texts_per_request`` texts, at most
``max_in_flight`` of them outstanding; each request has a timeout and is retried
with exponential backoff while the server is unavailable, for up to
``unavailable_timeout_s`` (a restarting server is waited for). Vectors come back as
(ids, weights) per view; the piece names are fetched once from the model.
"""

from __future__ import annotations

import threading
import time
from http.client import HTTPException
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np
from tritonclient.utils import InferenceServerException

from milco_os.errors import MilcoOsError
from milco_os.encoding.contract import SparseEncoder, check_texts
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.encoding.triton_wire import VECTOR_OUTPUTS, VOCAB_OUTPUTS, vectors_from_arrays

MAX_BACKOFF_S = 5.0
# gRPC status names, and the HTTP statuses of a server that is there but cannot serve now.
RETRIABLE_STATUSES = ("UNAVAILABLE", "StatusCode.UNAVAILABLE", "DEADLINE_EXCEEDED", "StatusCode.DEADLINE_EXCEEDED",
                      "502", "503", "504")


class TritonUnavailableError(MilcoOsError):
    """The Triton server cannot be reached, or the model is not ready."""

    exit_code = 7


class TritonRequestError(MilcoOsError):
    """The server answered a request with an error."""

    exit_code = 7


class TritonEncoder(SparseEncoder):
    """Encodes through ``model`` on the Triton server at ``url`` (``host:port``), over gRPC or HTTP.

    Requests run on ``max_in_flight`` long-lived threads, each with its own connection; ``close()``
    (or leaving a ``with`` block) ends them.
    """

    def __init__(self, url: str, model: str = "milco", protocol: str = "grpc", *, timeout_s: float = 60.0,
                 unavailable_timeout_s: float = 60.0, backoff_s: float = 0.5, max_in_flight: int = 4,
                 texts_per_request: int = 16):
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be grpc or http, not {protocol!r}")
        self.url, self.model, self.protocol = url, model, protocol
        self.timeout_s, self.unavailable_timeout_s, self.backoff_s = timeout_s, unavailable_timeout_s, backoff_s
        self.max_in_flight, self.texts_per_request = max_in_flight, texts_per_request
        self.name = f"triton:{model}"
        self._local = threading.local()
        self._clients: list = []
        self._clients_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="milco-triton")
        try:
            self._wait_until_ready()
            self.vocabulary = self._fetch_vocabulary()
        except BaseException:
            self.close()
            raise

    @property
    def _module(self):
        if self.protocol == "grpc":
            import tritonclient.grpc as module
        else:
            import tritonclient.http as module
        return module

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = self._module.InferenceServerClient(self.url)
            else:
                client = self._module.InferenceServerClient(self.url, connection_timeout=self.timeout_s,
                                                            network_timeout=self.timeout_s)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Stop the request threads and close their connections."""
        self._pool.shutdown(wait=True)
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def __enter__(self) -> TritonEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait_until_ready(self) -> None:
        """Wait while the model loads (up to ``unavailable_timeout_s``); fail at once if it is unknown or broken."""
        deadline = time.monotonic() + self.unavailable_timeout_s
        while not self._with_retries(lambda: self._client().is_model_ready(self.model), "readiness check"):
            state, reason = self._model_state()
            if state is None:
                raise TritonRequestError(f"Triton at {self.url} serves no model named '{self.model}'.",
                                         hint="check --triton-model against the server's model repository.")
            if state == "UNAVAILABLE" and reason:
                raise TritonUnavailableError(f"Triton at {self.url}: model '{self.model}' is unavailable: {reason}",
                                             hint="check the server log: the model may have failed to load.")
            if time.monotonic() + self.backoff_s > deadline:
                raise TritonUnavailableError(
                    f"Triton at {self.url} answers, but model '{self.model}' was not ready within "
                    f"{self.unavailable_timeout_s:g} s (state: {state}).",
                    hint="check the server log: the model may still be loading or may have failed to load.")
            time.sleep(self.backoff_s)

    def _model_state(self) -> tuple[str | None, str]:
        """The model's state and reason in the server's repository index; (None, '') when it is not listed."""
        client = self._client()
        index = self._with_retries(
            (lambda: client.get_model_repository_index(as_json=True).get("models", [])) if self.protocol == "grpc"
            else client.get_model_repository_index, "repository index request")
        entry = next((model for model in index if model.get("name") == self.model), None)
        return (entry.get("state") or "UNKNOWN", entry.get("reason") or "") if entry else (None, "")

    def _fetch_vocabulary(self) -> TermVocabulary:
        outputs = self._infer([""], {}, VOCAB_OUTPUTS)
        return TermVocabulary(tuple(p.decode("utf-8") for p in outputs["EN_VOCAB"].reshape(-1)),
                              tuple(p.decode("utf-8") for p in outputs["M_VOCAB"].reshape(-1)))

    def encode(self, texts: Sequence[str], *, max_length: int | None = None, batch_size: int | None = None,
               prune: str | PruneSpec | None = None, echo: bool = True) -> list[SparseVector]:
        """One SparseVector per text, in input order; same semantics as MilcoEncoder.encode."""
        checked = check_texts(texts)
        parameters = {"prune": str(PruneSpec.parse(prune)), "echo": "true" if echo else "false"}
        if max_length:
            parameters["max_length"] = str(max_length)
        results = [SparseVector.empty() for _ in checked]
        positions = [i for i, text in enumerate(checked) if text.strip()]
        size = batch_size or self.texts_per_request
        chunks = [positions[start : start + size] for start in range(0, len(positions), size)]
        answers = self._pool.map(lambda chunk: self._infer([checked[i] for i in chunk], parameters, VECTOR_OUTPUTS),
                                 chunks)
        for chunk, outputs in zip(chunks, answers):
            for position, vector in zip(chunk, vectors_from_arrays(outputs)):
                results[position] = vector
        return results

    def _infer(self, texts: list[str], parameters: dict[str, str], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        module = self._module
        data = np.array([[text.encode("utf-8")] for text in texts], dtype=np.object_)
        tensor = module.InferInput("TEXT", list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        requested = [module.InferRequestedOutput(name) for name in outputs]

        def call():
            options = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
            return self._client().infer(self.model, [tensor], outputs=requested, parameters=parameters or None,
                                        **options)

        result = self._with_retries(call, f"request of {len(texts)} text(s)")
        return {name: result.as_numpy(name) for name in outputs}

    def _with_retries(self, call, what: str):
        deadline = time.monotonic() + self.unavailable_timeout_s
        attempts = 0
        while True:
            attempts += 1
            try:
                return call()
            except InferenceServerException as exc:
                if str(exc.status()) not in RETRIABLE_STATUSES and not _is_connection_error(exc):
                    raise TritonRequestError(f"Triton at {self.url} refused the {what}: {exc.message()}") from exc
                failure: Exception = exc
            except (OSError, HTTPException) as exc:  # refused, reset, or closed mid-answer (HTTP client)
                failure = exc
            pause = min(self.backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
            if time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
        raise TritonUnavailableError(
            f"Triton at {self.url} ({self.protocol}) is unreachable or unavailable for the {what} "
            f"({attempts} attempts over {self.unavailable_timeout_s:g} s): {failure}",
            hint="check that tritonserver runs there and serves the model; see 'milco-os triton serve'.",
        )


def _is_connection_error(exc: InferenceServerException) -> bool:
    message = (exc.message() or "").lower()
    return any(word in message for word in ("connect", "unavailable", "socket closed", "broken pipe"))
