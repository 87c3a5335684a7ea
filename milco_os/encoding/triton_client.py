"""``TritonEncoder``: MILCO encoding through one or several Triton servers, with the in-process encoder's
interface.

Work is split into requests of at most ``texts_per_request`` texts, at most
``max_in_flight`` of them outstanding per server. Each request goes to the server with
the fewest requests outstanding; a server that stops answering is set aside (for a
backoff that doubles, up to ``MAX_BACKOFF_S``) and its request goes to another. When
every server is set aside, requests wait for one to come back, for up to
``unavailable_timeout_s`` (a restarting server is waited for). Vectors come back as
(ids, weights) per view; the piece names are fetched from the model, and every server's
must be the same.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Sequence

import numpy as np
from tritonclient.utils import InferenceServerException

from milco_os.errors import MilcoOsError
from milco_os.encoding.contract import SparseEncoder, check_texts
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.encoding.triton_wire import VECTOR_OUTPUTS, VOCAB_OUTPUTS, vectors_from_arrays
from milco_os.encoding.served_model import served_checkpoint, served_version, version_mismatch

MAX_BACKOFF_S = 5.0
# gRPC status names, and the HTTP statuses of a server that is there but cannot serve now.
RETRIABLE_STATUSES = ("UNAVAILABLE", "StatusCode.UNAVAILABLE", "DEADLINE_EXCEEDED", "StatusCode.DEADLINE_EXCEEDED",
                      "502", "503", "504")
logger = logging.getLogger(__name__)


class TritonUnavailableError(MilcoOsError):
    """No Triton server can be reached, or the model is not ready."""

    exit_code = 7


class TritonRequestError(MilcoOsError):
    """A server answered a request with an error, or serves a different model."""

    exit_code = 7


class ServerUnavailable(Exception):
    """One server could not serve one request now (refused, reset, 503, timed out)."""


def parse_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """``host:port`` addresses from a comma-separated string or a sequence of them, in order, without repeats."""
    items = urls.split(",") if isinstance(urls, str) else list(urls)
    parsed = tuple(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not parsed:
        raise ValueError("at least one Triton server address (host:port) is needed")
    return parsed


@dataclass
class TritonServerSlot:
    """One server of the fleet: its address, its outstanding requests and whether it is set aside."""

    url: str
    in_flight: int = 0
    failures: int = 0
    set_aside_until: float = 0.0
    vocabulary_checked: bool = False

    def available(self, now: float) -> bool:
        return self.set_aside_until <= now


class TritonEncoder(SparseEncoder):
    """Encodes through ``model`` on the Triton servers at ``urls`` (``host:port``, comma-separated or a list),
    over gRPC or HTTP.

    Requests run on ``max_in_flight`` long-lived threads per server, each with its own
    connection to every server; ``close()`` (or leaving a ``with`` block) ends them.
    """

    def __init__(self, urls: str | Sequence[str], model: str = "milco", protocol: str = "grpc", *,
                 timeout_s: float = 60.0, unavailable_timeout_s: float = 60.0, backoff_s: float = 0.5,
                 max_in_flight: int = 4, texts_per_request: int = 16):
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be grpc or http, not {protocol!r}")
        self.servers = [TritonServerSlot(url) for url in parse_urls(urls)]
        self.url = ", ".join(server.url for server in self.servers)
        self.model, self.protocol = model, protocol
        self.timeout_s, self.unavailable_timeout_s, self.backoff_s = timeout_s, unavailable_timeout_s, backoff_s
        self.max_in_flight, self.texts_per_request = max_in_flight, texts_per_request
        self.name = f"triton:{model}"
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        self._turn = 0
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight * len(self.servers),
                                        thread_name_prefix="milco-triton")
        try:
            first = self._wait_until_ready()
            try:
                self.vocabulary = self._fetch_vocabulary(first)
            except ServerUnavailable as exc:
                raise TritonUnavailableError(f"Triton at {first.url} stopped answering right after it was ready: "
                                             f"{exc}", hint="check the server log, and run the command again.")
            first.vocabulary_checked = True
            self._warn_on_other_version(first)
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

    def _client(self, server: TritonServerSlot):
        """This thread's connection to ``server``."""
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        client = clients.get(server.url)
        if client is None:
            if self.protocol == "grpc":
                client = self._module.InferenceServerClient(server.url)
            else:
                client = self._module.InferenceServerClient(server.url, connection_timeout=self.timeout_s,
                                                            network_timeout=self.timeout_s)
            clients[server.url] = client
            with self._lock:
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Stop the request threads and close their connections."""
        self._pool.shutdown(wait=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def __enter__(self) -> TritonEncoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _wait_until_ready(self) -> TritonServerSlot:
        """The first server whose model is ready, waited for up to ``unavailable_timeout_s``; the others are set
        aside for a while. Fails at once when a server does not know the model or could not load it."""
        deadline = time.monotonic() + self.unavailable_timeout_s
        attempts, states, errors = 0, {}, {}
        while True:
            attempts += 1
            for server in self.servers:
                try:
                    if self._client(server).is_model_ready(self.model):
                        self._set_aside_unready([other for other in self.servers if other.url in {*states, *errors}])
                        return server
                    states[server.url] = self._model_state(server)
                except ServerUnavailable as exc:
                    errors[server.url] = exc
                except (InferenceServerException, OSError, HTTPException) as exc:
                    if not self._is_unavailability(exc):
                        raise self._refusal(server, "readiness check", exc) from exc
                    errors[server.url] = exc
            pause = min(self.backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
            if time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
        if states:
            raise TritonUnavailableError(
                f"Triton at {', '.join(states)} answers, but model '{self.model}' was not ready within "
                f"{self.unavailable_timeout_s:g} s (state: {', '.join(states.values())}).",
                hint="check the server log: the model may still be loading or may have failed to load.")
        raise self._all_down("readiness check", attempts, errors)

    def _model_state(self, server: TritonServerSlot) -> str:
        """The model's state in ``server``'s repository index; fails at once when it is absent or broken."""
        client = self._client(server)
        try:
            index = client.get_model_repository_index(as_json=True).get("models", []) if self.protocol == "grpc" \
                else client.get_model_repository_index()
        except (InferenceServerException, OSError, HTTPException) as exc:
            if not self._is_unavailability(exc):
                raise self._refusal(server, "repository index request", exc) from exc
            raise ServerUnavailable(str(exc)) from exc
        entry = next((model for model in index if model.get("name") == self.model), None)
        if entry is None:
            raise TritonRequestError(f"Triton at {server.url} serves no model named '{self.model}'.",
                                     hint="check --triton-model against the server's model repository.")
        state, reason = entry.get("state") or "UNKNOWN", entry.get("reason") or ""
        if state == "UNAVAILABLE" and reason:
            raise TritonUnavailableError(f"Triton at {server.url}: model '{self.model}' is unavailable: {reason}",
                                         hint="check the server log: the model may have failed to load.")
        return state

    def _fetch_vocabulary(self, server: TritonServerSlot) -> TermVocabulary:
        outputs = self._infer_on(server, [""], {}, VOCAB_OUTPUTS)
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
        """The outputs for ``texts`` from the least-loaded server that answers, waiting while none does."""
        what = f"request of {len(texts)} text(s)"
        deadline = time.monotonic() + self.unavailable_timeout_s
        attempts, failures = 0, {}
        while True:
            server, wait = self._least_loaded()
            if server is None:
                if time.monotonic() + wait > deadline:
                    raise self._all_down(what, attempts, failures)
                time.sleep(wait)
                continue
            attempts += 1
            try:
                self._check_vocabulary(server)
                answer = self._infer_on(server, texts, parameters, outputs)
            except ServerUnavailable as exc:
                failures[server.url] = exc
                self._set_aside(server, exc)
                continue
            finally:
                with self._lock:
                    server.in_flight -= 1
            self._came_back(server)
            return answer

    def _least_loaded(self) -> tuple[TritonServerSlot | None, float]:
        """The available server with the fewest outstanding requests (now counting this one), or None and how
        long until the first set-aside server may be tried again."""
        with self._lock:
            now = time.monotonic()
            available = [server for server in self.servers if server.available(now)]
            if not available:
                return None, max(0.0, min(server.set_aside_until for server in self.servers) - now)
            # Ties go round the fleet, so that servers equally idle share the work.
            count, start = len(self.servers), self._turn
            server = min(available, key=lambda candidate: (candidate.in_flight,
                                                           (self.servers.index(candidate) - start) % count))
            self._turn = (self.servers.index(server) + 1) % count
            server.in_flight += 1
            return server, 0.0

    def _set_aside_unready(self, servers: list[TritonServerSlot]) -> None:
        """Servers found not ready at start wait a first backoff before they are tried."""
        for server in servers:
            server.failures, server.set_aside_until = 1, time.monotonic() + self.backoff_s

    def _set_aside(self, server: TritonServerSlot, exc: BaseException) -> None:
        with self._lock:
            server.failures += 1
            pause = min(self.backoff_s * 2 ** (server.failures - 1), MAX_BACKOFF_S)
            server.set_aside_until = max(server.set_aside_until, time.monotonic() + pause)
            first = server.failures == 1
        if first and len(self.servers) > 1:
            logger.warning("Triton at %s set aside (tried again in %.1f s, then backing off): %s",
                           server.url, pause, exc)

    def _came_back(self, server: TritonServerSlot) -> None:
        with self._lock:
            was_aside, server.failures = server.failures > 0, 0
        if was_aside and len(self.servers) > 1:
            logger.warning("Triton at %s serves again", server.url)

    def _check_vocabulary(self, server: TritonServerSlot) -> None:
        """A server first used after the others must serve the same pieces (else its vectors would mean other
        terms)."""
        if server.vocabulary_checked:
            return
        vocabulary = self._fetch_vocabulary(server)
        if vocabulary != self.vocabulary:
            raise TritonRequestError(
                f"Triton at {server.url} serves a model '{self.model}' with other vocabularies than "
                f"{self.servers[0].url} ({len(vocabulary.en_pieces)} + {len(vocabulary.m_pieces)} pieces, not "
                f"{len(self.vocabulary.en_pieces)} + {len(self.vocabulary.m_pieces)}).",
                hint="every server of --triton-url must serve the same exported checkpoint.")
        server.vocabulary_checked = True
        self._warn_on_other_version(server)

    def _warn_on_other_version(self, server: TritonServerSlot) -> None:
        """A warning when ``server``'s model was exported by another milco-os version than this client's; the
        checkpoint digest its export recorded is the encoder's fingerprint."""
        client = self._client(server)
        try:
            config = client.get_model_config(self.model, as_json=True).get("config", {}) \
                if self.protocol == "grpc" else client.get_model_config(self.model)
        except (InferenceServerException, OSError, HTTPException) as exc:
            logger.debug("Triton at %s: no model configuration (%s)", server.url, exc)
            return
        self.fingerprint = self.fingerprint or served_checkpoint(config)
        warning = version_mismatch(served_version(config), f"the model '{self.model}' served by Triton at {server.url}")
        if warning:
            logger.warning(warning)

    def _infer_on(self, server: TritonServerSlot, texts: list[str], parameters: dict[str, str],
                  outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """One attempt on one server: its outputs, ServerUnavailable, or TritonRequestError when it refuses."""
        module = self._module
        data = np.array([[text.encode("utf-8")] for text in texts], dtype=np.object_)
        tensor = module.InferInput("TEXT", list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        requested = [module.InferRequestedOutput(name) for name in outputs]
        options = {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}
        try:
            result = self._client(server).infer(self.model, [tensor], outputs=requested,
                                                parameters=parameters or None, **options)
        except (InferenceServerException, OSError, HTTPException) as exc:
            if self._is_unavailability(exc):
                raise ServerUnavailable(str(exc)) from exc
            raise self._refusal(server, f"request of {len(texts)} text(s)", exc) from exc
        return {name: result.as_numpy(name) for name in outputs}

    @staticmethod
    def _is_unavailability(exc: BaseException) -> bool:
        """Refused, reset, closed mid-answer, 502/503/504 or timed out: the server may serve again later."""
        if isinstance(exc, InferenceServerException):
            return str(exc.status()) in RETRIABLE_STATUSES or _is_connection_error(exc)
        return isinstance(exc, (ServerUnavailable, OSError, HTTPException))

    def _refusal(self, server: TritonServerSlot, what: str, exc: BaseException) -> TritonRequestError:
        message = exc.message() if isinstance(exc, InferenceServerException) else str(exc)
        return TritonRequestError(f"Triton at {server.url} refused the {what}: {message}")

    def _all_down(self, what: str, attempts: int, failures: dict[str, Any]) -> TritonUnavailableError:
        last = "; ".join(str(failure) if len(self.servers) == 1 else f"{url}: {failure}"
                         for url, failure in failures.items())
        where = f"Triton at {self.url} ({self.protocol}) is" if len(self.servers) == 1 else \
            f"Every Triton server ({self.url}, {self.protocol}) is"
        return TritonUnavailableError(
            f"{where} unreachable or unavailable for the {what} ({attempts} attempts over "
            f"{self.unavailable_timeout_s:g} s){': ' + last if last else ''}",
            hint="check that tritonserver runs there and serves the model; see 'milco-os triton serve'.",
        )


def _is_connection_error(exc: InferenceServerException) -> bool:
    message = (exc.message() or "").lower()
    return any(word in message for word in ("connect", "unavailable", "socket closed", "broken pipe"))


def served_fingerprint(url: str, model: str, timeout_s: float = 10.0) -> str | None:
    """The checkpoint fingerprint the model ``model`` served by Triton's HTTP endpoint ``url`` records in its
    configuration; None when this machine cannot reach it or the export recorded none."""
    import tritonclient.http as http

    address = url.split("://", 1)[-1].rstrip("/")
    try:
        client = http.InferenceServerClient(address, connection_timeout=timeout_s, network_timeout=timeout_s,
                                            ssl=url.startswith("https://"))
        try:
            return served_checkpoint(client.get_model_config(model))
        finally:
            client.close()
    except (InferenceServerException, OSError, HTTPException) as exc:
        logger.debug("Triton at %s: no model configuration (%s)", url, exc)
        return None
