"""What an engine adapter provides; see ``milco_os.engines``."""

from __future__ import annotations

import enum
import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from milco_os.managed_clusters import AwsSigning


# Connections each client keeps per node: reindex runs a reader and a writer thread per slice on one client.
POOL_MAXSIZE = 32
# Statuses of a cluster that is there but cannot serve the request now (node closing, shards recovering).
UNAVAILABLE_STATUSES = (502, 503, 504)


def cluster_hosts(url: str) -> list[str]:
    """The node URLs of ``url``: one, or several comma-separated (a client then goes on when one node leaves)."""
    return [host.strip() for host in url.split(",") if host.strip()]


class ErrorKind(enum.Enum):
    TLS = "tls"
    CONNECTION = "connection"
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    HTTP = "http"
    CONFIGURATION = "configuration"


@dataclass(frozen=True)
class ClusterVersion:
    """The engine and version a cluster reports."""

    engine: str
    number: str

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = (int(part) for part in self.number.split(".")[:2])
        return major, minor


class Engine(ABC):
    """One engine's client and the operations whose API differs between engines."""

    name: ClassVar[str]
    client_module: ClassVar[str]

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    @abstractmethod
    def make_client(cls, url: str, *, user: str | None, password: str | None, api_key: str | None,
                    ca_certs: str | None, verify_certs: bool, timeout: float, max_retries: int,
                    pool_maxsize: int = POOL_MAXSIZE, aws: AwsSigning | None = None, client_cert: str | None = None,
                    client_key: str | None = None) -> Any:
        """A client of the nodes in ``url`` (see ``cluster_hosts``) that retries 502/503/504, timeouts and
        connection failures (on another node when it has several), verifying https unless told not to; requests
        signed with AWS SigV4 when ``aws`` is given, a client certificate presented when ``client_cert`` is."""

    @staticmethod
    @abstractmethod
    def classify(exc: BaseException) -> ErrorKind | None:
        """The kind of failure, or None when ``exc`` is not this client's error."""

    @staticmethod
    @abstractmethod
    def status(exc: BaseException) -> int | None:
        """The HTTP status of an error response, None for other failures."""

    @staticmethod
    @abstractmethod
    def reason(exc: BaseException) -> str:
        """The cluster's reason (or the connection failure) on one line."""

    @staticmethod
    @abstractmethod
    def error_type(exc: BaseException) -> str | None:
        """The type the cluster gave an error response (``resource_already_exists_exception``), else None."""

    @staticmethod
    @abstractmethod
    def error_index(exc: BaseException) -> str | None:
        """The index an error response names (a missing or closed one), else None."""

    @abstractmethod
    def bulk(self, operations: list[dict], pipeline: str | None = None) -> dict:
        """One ``_bulk`` request of action/source pairs (through ``pipeline``, ``_none`` for none, instead of the
        index's default pipeline when given); the response (raises this client's errors)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The URLs of the nodes the client knows (comma-separated), without credentials."""

    @functools.cached_property
    def version(self) -> ClusterVersion:
        """The cluster's engine and version number (asked once)."""
        return ClusterVersion(self.name, self._version_number())

    @abstractmethod
    def _version_number(self) -> str: ...

    @abstractmethod
    def open_pit(self, index: str, keep_alive: str) -> str: ...

    @abstractmethod
    def close_pit(self, pit: str) -> None: ...

    @property
    @abstractmethod
    def pit_sort(self) -> list[dict]:
        """A unique sort for ``search_after`` over a point in time."""

    @abstractmethod
    def supports_pit(self) -> bool: ...

    @abstractmethod
    def scroll(self, scroll_id: str, keep_alive: str) -> dict: ...

    @abstractmethod
    def clear_scroll(self, scroll_id: str) -> None: ...

    @abstractmethod
    def get_pipeline(self, name: str) -> dict | None:
        """The stored ingest pipeline, or None when there is none."""

    def create_index_unless_exists(self, index: str, body: dict) -> bool:
        """Create ``index``; False when it already exists (another process may create it between a check and
        this call, as the hosts of one ``--share`` job do)."""
        try:
            self.client.indices.create(index=index, body=body)
        except Exception as exc:
            if self.error_type(exc) == "resource_already_exists_exception":
                return False
            raise
        return True

    def ingest_processors(self) -> set[str]:
        """The processor types every node's ingest service has (same API in both engines)."""
        nodes = plain(self.client.nodes.info(metric="ingest"))["nodes"].values()
        sets = [{p["type"] for p in (node.get("ingest") or {}).get("processors", [])} for node in nodes]
        return set.intersection(*sets) if sets else set()


def plain(response: Any) -> Any:
    """A response as plain JSON data (elasticsearch wraps it in an ApiResponse, opensearch-py does not)."""
    return getattr(response, "body", response)


def error_type_in(body: object) -> str | None:
    """``error.type`` of an error response's body, when it has one."""
    error = body.get("error") if isinstance(body, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def error_index_in(body: object) -> str | None:
    """``error.index`` of an error response's body, when it names one."""
    error = body.get("error") if isinstance(body, dict) else None
    index = error.get("index") if isinstance(error, dict) else None
    return index if isinstance(index, str) else None


def one_line(text: object, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]
