"""Bulk writes that ride out backpressure and short outages, and count what they rode out.

The client library's ``streaming_bulk`` retries documents the cluster rejects with
429 (exponential backoff); a thin wrapper around the client counts those rejections.
Documents that fail because the cluster does not answer (connection refused, timeout)
or answers 502/503/504 (node closing, shards not yet recovered) are retried as a group
until ``unavailable_timeout_s`` has passed without progress; then
``ClusterUnavailableError`` stops the job, whose checkpoint covers everything written before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from milco_os.engines import Engine, ErrorKind
from milco_os.engines.base import one_line
from milco_os.errors import ClusterUnavailableError

MAX_RETRIES_ON_429 = 8
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 20.0
UNAVAILABLE_PAUSE_S = 2.0
UNAVAILABLE_STATUSES = (502, 503, 504)


@dataclass
class BulkCounters:
    """What a writer rode out: documents rejected with 429 (and retried), and waits for an unavailable cluster."""

    rejected_429: int = 0
    unavailable_retries: int = 0

    def count_response(self, response: dict) -> None:
        self.rejected_429 += sum(
            1 for item in response.get("items", ()) if next(iter(item.values())).get("status") == 429)

    def count_rejected_request(self) -> None:
        self.rejected_429 += 1


@dataclass(frozen=True)
class BulkResult:
    """One document's outcome: written, or refused with the cluster's status and reason."""

    doc_id: str
    ok: bool
    status: int | str | None = None
    error: object = None
    unavailable: bool = False


class BulkWriter:
    """Writes batches of bulk actions (each with an ``_id``) and reports one result per document."""

    def __init__(self, engine: Engine, *, unavailable_timeout_s: float = 120.0) -> None:
        self.engine = engine
        self.unavailable_timeout_s = unavailable_timeout_s
        self.counters = BulkCounters()
        self._counting_client = engine.counting_client(self.counters.count_response,
                                                       self.counters.count_rejected_request)

    def write(self, actions: list[dict]) -> list[BulkResult]:
        """Results in no particular order; raises ClusterUnavailableError after a long outage."""
        done: list[BulkResult] = []
        pending = actions
        waited_since: float | None = None
        while pending:
            results = self._write_once(pending)
            unavailable = {result.doc_id for result in results if result.unavailable}
            done.extend(result for result in results if result.doc_id not in unavailable)
            if not unavailable:
                break
            now = time.monotonic()
            if len(unavailable) < len(pending) or waited_since is None:
                waited_since = now
            if now - waited_since > self.unavailable_timeout_s:
                reason = next(result.error for result in results if result.doc_id in unavailable)
                raise ClusterUnavailableError(
                    f"the cluster at {self.engine.url} has not taken writes for {self.unavailable_timeout_s:.0f} s "
                    f"({len(unavailable)} document(s) waiting): {one_line(reason)}",
                    hint="bring the cluster back, then re-run the same command with --resume.",
                )
            self.counters.unavailable_retries += 1
            time.sleep(UNAVAILABLE_PAUSE_S)
            pending = [action for action in pending if action["_id"] in unavailable]
        return done

    def _write_once(self, actions: list[dict]) -> list[BulkResult]:
        results = []
        try:
            for ok, item in self.engine.streaming_bulk(
                self._counting_client, actions, chunk_size=len(actions), max_chunk_bytes=50 * 1024 * 1024,
                raise_on_error=False, raise_on_exception=False, max_retries=MAX_RETRIES_ON_429,
                initial_backoff=INITIAL_BACKOFF_S, max_backoff=MAX_BACKOFF_S,
            ):
                info = next(iter(item.values())) if item else {}
                error = info.get("exception") or info.get("error")
                results.append(BulkResult(str(info.get("_id")), ok, info.get("status"), None if ok else error,
                                          unavailable=not ok and self._is_unavailable(info.get("status"), error)))
        except Exception as exc:  # a client that raises connection failures instead of reporting them per item
            if self.engine.classify(exc) is not ErrorKind.CONNECTION:
                raise
            written = {result.doc_id for result in results}
            results += [BulkResult(str(action["_id"]), False, None, exc, unavailable=True)
                        for action in actions if str(action["_id"]) not in written]
        return results

    def _is_unavailable(self, status: object, error: object) -> bool:
        return status in UNAVAILABLE_STATUSES or (
            isinstance(error, BaseException) and self.engine.classify(error) is ErrorKind.CONNECTION)
