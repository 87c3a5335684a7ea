"""Bulk writes that ride out backpressure and short outages, and count what they rode out.

opensearch-py's ``streaming_bulk`` retries documents the cluster rejects with 429
(exponential backoff); a thin wrapper around the client counts those rejections.
Documents that fail because the cluster does not answer (connection refused, timeout)
or answers 503 (node closing, shards not yet recovered) are retried as a group until
``unavailable_timeout_s`` has passed without progress; then ``ClusterUnavailableError``
stops the job, whose checkpoint covers everything written before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from opensearchpy import helpers
from opensearchpy.exceptions import ConnectionError as TransportConnectionError
from opensearchpy.exceptions import TransportError

from milco_os.errors import ClusterUnavailableError

MAX_RETRIES_ON_429 = 8
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 20.0
UNAVAILABLE_PAUSE_S = 2.0
UNAVAILABLE_STATUSES = (502, 503, 504)


@dataclass
class BulkCounters:
    """What a writer rode out: 429 rejections retried, and waits for an unavailable cluster."""

    rejected_429: int = 0
    unavailable_retries: int = 0


@dataclass(frozen=True)
class BulkResult:
    """One document's outcome: written, or refused with the cluster's status and reason."""

    doc_id: str
    ok: bool
    status: int | str | None = None
    error: object = None


class _RejectionCountingClient:
    """The client as ``streaming_bulk`` sees it, counting documents rejected with 429."""

    def __init__(self, client, counters: BulkCounters) -> None:
        self._client = client
        self._counters = counters
        self.transport = client.transport

    def bulk(self, *args, **kwargs):
        try:
            response = self._client.bulk(*args, **kwargs)
        except TransportError as exc:
            if exc.status_code == 429:
                self._counters.rejected_429 += 1
            raise
        self._counters.rejected_429 += sum(
            1 for item in response.get("items", ()) if next(iter(item.values())).get("status") == 429)
        return response


def is_unavailable(result: BulkResult) -> bool:
    """True when the document failed because the cluster could not take it right now."""
    return isinstance(result.error, TransportConnectionError) or result.status in UNAVAILABLE_STATUSES


class BulkWriter:
    """Writes batches of bulk actions (each with an ``_id``) and reports one result per document."""

    def __init__(self, client, *, url: str, unavailable_timeout_s: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.url = url
        self.unavailable_timeout_s = unavailable_timeout_s
        self.sleep = sleep
        self.counters = BulkCounters()
        self._counting_client = _RejectionCountingClient(client, self.counters)

    def write(self, actions: list[dict]) -> list[BulkResult]:
        """Results in no particular order; raises ClusterUnavailableError after a long outage."""
        done: list[BulkResult] = []
        pending = actions
        waited_since: float | None = None
        while pending:
            results = self._write_once(pending)
            unavailable = {result.doc_id for result in results if is_unavailable(result)}
            done.extend(result for result in results if result.doc_id not in unavailable)
            if not unavailable:
                break
            now = time.monotonic()
            if len(unavailable) < len(pending) or waited_since is None:
                waited_since = now
            if now - waited_since > self.unavailable_timeout_s:
                reason = next(result.error for result in results if result.doc_id in unavailable)
                raise ClusterUnavailableError(
                    f"the cluster at {self.url} has not taken writes for {self.unavailable_timeout_s:.0f} s "
                    f"({len(unavailable)} document(s) waiting): {_short(reason)}",
                    hint="bring the cluster back, then re-run the same command with --resume.",
                )
            self.counters.unavailable_retries += 1
            self.sleep(UNAVAILABLE_PAUSE_S)
            pending = [action for action in pending if action["_id"] in unavailable]
        return done

    def _write_once(self, actions: list[dict]) -> list[BulkResult]:
        results = []
        for ok, item in helpers.streaming_bulk(
            self._counting_client, actions, chunk_size=len(actions), max_chunk_bytes=50 * 1024 * 1024,
            raise_on_error=False, raise_on_exception=False, max_retries=MAX_RETRIES_ON_429,
            initial_backoff=INITIAL_BACKOFF_S, max_backoff=MAX_BACKOFF_S,
        ):
            info = next(iter(item.values())) if item else {}
            error = info.get("exception") or info.get("error")
            results.append(BulkResult(str(info.get("_id")), ok, info.get("status"), None if ok else error))
        return results


def _short(reason: object) -> str:
    """An exception or error body as one line."""
    return " ".join(str(reason).split())[:300]
