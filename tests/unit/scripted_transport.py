"""Scripted wires for the real client libraries: only the bytes exchanged with a server are faked.

OpenSearch: ``ScriptedConnection`` replaces opensearch-py's HTTP connection, so ``OpenSearch``,
its transport, serializer, error mapping and bulk helpers all run unchanged. Each
request is recorded in a ``Script`` and answered from it (queued answers per method and path,
or a responder called for every request), or the request fails like a real connection would.

Triton: ``TritonStub`` is a small HTTP server on 127.0.0.1 speaking just enough of the KServe v2
protocol (model readiness, inference with binary tensors) for ``tritonclient.http``; scripted
failures (HTTP errors, dropped connections) come first, then a toy model answers.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Collection, Iterable, Iterator, Mapping, Sequence

import numpy as np
from opensearchpy import Connection, OpenSearch
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.encoding.triton_wire import vector_arrays
from milco_os.encoding.served_model import VERSION_PARAMETER


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: a status and a JSON body (or raw text)."""

    status: int = 200
    body: Any = None

    def raw(self) -> str:
        if self.body is None:
            return ""
        return self.body if isinstance(self.body, str) else json.dumps(self.body)


class Drop:
    """The connection fails before any answer (refused, reset or closed)."""

    def __repr__(self) -> str:
        return "DROP"


DROP = Drop()
Answer = Reply | Drop


@dataclass(frozen=True)
class Request:
    """One request as the server saw it: ``params`` as text, ``body`` as parsed JSON (NDJSON: a list of lines)."""

    method: str
    path: str
    params: Mapping[str, Any]
    body: Any

    @classmethod
    def parse(cls, method: str, path: str, params: Mapping[str, Any] | None, body: bytes | str | None) -> Request:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        if not text:
            parsed = None
        elif path.endswith("/_bulk"):
            parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            parsed = json.loads(text)
        query = {key: value.decode("utf-8") if isinstance(value, bytes) else value
                 for key, value in (params or {}).items()}
        return cls(method, path, query, parsed)

    def bulk_operations(self) -> list[tuple[str, dict, dict | None]]:
        """(operation, metadata, source) per document of a ``_bulk`` body (``delete`` has no source)."""
        lines, operations = iter(self.body), []
        for action in lines:
            (operation, meta), = action.items()
            operations.append((operation, meta, None if operation == "delete" else next(lines)))
        return operations


Responder = Callable[[Request], Answer]


class Script:
    """What the fake cluster answers, by (method, path), and every request it was sent.

    A request that nothing in the script answers is recorded in ``unexpected`` and fails the
    client call with an AssertionError.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.unexpected: list[Request] = []
        self._queued: dict[tuple[str, str], deque[Answer]] = {}
        self._responders: dict[tuple[str, str], Responder] = {}
        self._lock = threading.Lock()

    def expect(self, method: str, path: str, *answers: Answer) -> Script:
        """Answer the next requests to ``method path`` with ``answers``, one each, in order."""
        self._queued.setdefault((method, path), deque()).extend(answers)
        return self

    def respond(self, method: str, path: str, responder: Responder) -> Script:
        """Answer every request to ``method path`` (once its queued answers are used) with ``responder``."""
        self._responders[(method, path)] = responder
        return self

    def answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            key = (request.method, request.path)
            if self._queued.get(key):
                return self._queued[key].popleft()
            responder = self._responders.get(key)
            if responder is None:
                self.unexpected.append(request)
        if responder is not None:
            return responder(request)  # outside the lock: requests sent from several threads overlap
        raise AssertionError(f"unscripted request {request.method} {request.path} {request.params}")

    def sent(self, method: str, path: str) -> list[Request]:
        """The requests sent to ``method path``, in order."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def unused(self) -> dict[tuple[str, str], list[Answer]]:
        """Queued answers no request took."""
        return {key: list(answers) for key, answers in self._queued.items() if answers}


class ScriptedConnection(Connection):
    """An opensearch-py connection whose server is a ``Script`` (pass ``script=`` to ``OpenSearch``)."""

    def __init__(self, *, script: Script, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.script = script

    def perform_request(self, method: str, url: str, params: Mapping[str, Any] | None = None,
                        body: bytes | None = None, timeout: float | None = None, allow_redirects: bool = True,
                        ignore: Collection[int] = (), headers: Mapping[str, str] | None = None) -> Any:
        answer = self.script.answer(Request.parse(method, self.url_prefix + url, params, body))
        if isinstance(answer, Drop):
            cause = ConnectionRefusedError(111, "Connection refused")
            raise TransportConnectionError("N/A", f"{method} {self.host}{url}: {cause}", cause)
        raw = answer.raw()
        if not 200 <= answer.status < 300 and answer.status not in ignore:
            self._raise_error(answer.status, raw, "application/json")
        return answer.status, {"content-type": "application/json"}, raw


def scripted_client(script: Script, **options: Any) -> OpenSearch:
    """A real ``OpenSearch`` client on ``script``; its transport does not retry unless ``max_retries`` says so."""
    return OpenSearch(hosts=[{"host": "127.0.0.1", "port": 9200}], connection_class=ScriptedConnection,
                      script=script, **{"max_retries": 0, **options})


def opensearch_info(version: str) -> Reply:
    """The root endpoint's answer of an OpenSearch node of ``version``."""
    return Reply(200, {"name": "node-1", "cluster_name": "scripted",
                       "version": {"distribution": "opensearch", "number": version}})


def error_reply(status: int, error_type: str, reason: str) -> Reply:
    """An error answer shaped like the cluster's."""
    return Reply(status, {"error": {"root_cause": [{"type": error_type, "reason": reason}], "type": error_type,
                                    "reason": reason}, "status": status})


BULK_ITEM_ERRORS = {
    400: ("mapper_parsing_exception", "failed to parse field [year] of type [long]"),
    409: ("version_conflict_engine_exception", "version conflict, document already exists"),
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
}


def bulk_items(statuses: Mapping[str, Sequence[int | tuple[int, str, str]]], default: int = 201) -> Responder:
    """A ``_bulk`` responder: each document's next status from ``statuses`` (by ``_id``), then ``default``; a status
    given as ``(status, error type, reason)`` fails the item with that error."""
    queues = {doc_id: deque(sequence) for doc_id, sequence in statuses.items()}

    def respond(request: Request) -> Reply:
        items = []
        for operation, meta, _ in request.bulk_operations():
            doc_id = str(meta["_id"])
            outcome = queues[doc_id].popleft() if queues.get(doc_id) else default
            status, error = (outcome[0], outcome[1:]) if isinstance(outcome, tuple) else (outcome, None)
            item: dict[str, Any] = {"_index": meta.get("_index", "scripted"), "_id": doc_id, "status": status}
            if status >= 300:
                error_type, reason = error or BULK_ITEM_ERRORS.get(status, ("exception", f"status {status}"))
                item["error"] = {"type": error_type, "reason": reason if error else f"[{doc_id}]: {reason}"}
            items.append({operation: item})
        return Reply(200, {"took": 1, "errors": any(i[o]["status"] >= 300 for i in items for o in i), "items": items})

    return respond


class TritonStub:
    """A KServe v2 HTTP endpoint for ``model``, serving ``encode`` and ``vocabulary`` once its failures are used.

    ``fail(endpoint, answers)`` queues answers for ``"ready"`` or ``"infer"`` requests: a ``Reply``
    (an HTTP error with a JSON ``error``) or ``DROP`` (the connection is closed unanswered).
    ``requests`` lists the endpoint of every request received; ``repository`` is what the
    repository index (``POST /v2/repository/index``) lists; ``exported_with`` the milco-os version its model
    configuration records (None: no configuration). Connections are refused until ``listen()``.
    """

    def __init__(self, model: str, encode: Callable[[list[str]], list[SparseVector]],
                 vocabulary: TermVocabulary) -> None:
        self.model, self.encode, self.vocabulary = model, encode, vocabulary
        self.requests: list[str] = []
        self.repository: list[dict] = [{"name": model, "version": "1", "state": "READY"}]
        self.exported_with: str | None = None
        self._failures: dict[str, Iterator[Answer]] = {"ready": iter(()), "infer": iter(())}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class(), bind_and_activate=False)
        self._server.daemon_threads = True
        self._server.server_bind()  # bound but not listening: connections are refused until listen()
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), name="triton-stub",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def fail(self, endpoint: str, answers: Iterable[Answer]) -> None:
        """Answer the next ``endpoint`` requests with ``answers`` (an iterable, possibly endless)."""
        self._failures[endpoint] = iter(answers)

    def count(self, endpoint: str) -> int:
        return self.requests.count(endpoint)

    def listen(self) -> None:
        """Start accepting connections (until then they are refused)."""
        self._server.server_activate()
        self._thread.start()

    def __enter__(self) -> TritonStub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def _next_failure(self, endpoint: str) -> Answer | None:
        with self._lock:
            self.requests.append(endpoint)
            return next(self._failures[endpoint], None)

    def _infer(self, header: dict, binary: bytes) -> tuple[dict, bytes]:
        """The inference answer: JSON header and binary outputs, for the outputs the request names."""
        texts = [t.decode("utf-8") for t in deserialize_bytes_tensor(binary).reshape(-1)]
        arrays = vector_arrays(self.encode(texts))
        arrays["EN_VOCAB"] = np.array(self.vocabulary.en_pieces, dtype=np.object_).reshape(1, -1)
        arrays["M_VOCAB"] = np.array(self.vocabulary.m_pieces, dtype=np.object_).reshape(1, -1)
        outputs, buffers = [], []
        for name in (output["name"] for output in header["outputs"]):
            array = arrays[name]
            data = serialize_byte_tensor(array).item() if array.dtype == np.object_ else array.tobytes()
            datatype = {"object": "BYTES", "int32": "INT32", "float32": "FP32"}[array.dtype.name]
            outputs.append({"name": name, "datatype": datatype, "shape": list(array.shape),
                            "parameters": {"binary_data_size": len(data)}})
            buffers.append(data)
        return {"model_name": self.model, "outputs": outputs}, b"".join(buffers)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the tests assert on ``stub.requests``."""

            def do_GET(self) -> None:
                if self.path == f"/v2/models/{stub.model}/config" and stub.exported_with is not None:
                    parameters = {VERSION_PARAMETER: {"string_value": stub.exported_with}}
                    return self._send(Reply(200, {"name": stub.model, "parameters": parameters}))
                if self.path != f"/v2/models/{stub.model}/ready":
                    return self._send(Reply(404, {"error": f"no route {self.path}"}))
                self._send(stub._next_failure("ready") or Reply(200))

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path == "/v2/repository/index":
                    stub.requests.append("index")
                    return self._send(Reply(200, stub.repository))
                if self.path != f"/v2/models/{stub.model}/infer":
                    return self._send(Reply(404, {"error": f"no route {self.path}"}))
                failure = stub._next_failure("infer")
                if failure is not None:
                    return self._send(failure)
                header_length = int(self.headers["Inference-Header-Content-Length"])
                header, binary = stub._infer(json.loads(body[:header_length]), body[header_length:])
                header_bytes = json.dumps(header).encode("utf-8")
                self._send_bytes(200, header_bytes + binary, "application/octet-stream",
                                 {"Inference-Header-Content-Length": str(len(header_bytes))})

            def _send(self, answer: Answer) -> None:
                if isinstance(answer, Drop):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send_bytes(answer.status, answer.raw().encode("utf-8"), "application/json", {})

            def _send_bytes(self, status: int, payload: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler
