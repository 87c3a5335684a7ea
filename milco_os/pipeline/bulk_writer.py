"""Bulk writes that ride out backpressure and short outages, and count what they rode out.

The actions of one ``write`` go in consecutive ``_bulk`` requests of at most ``max_bytes`` each
(measured as the clients serialise them), one after another; an action larger than that on its own
goes alone. Each request has its own retry loop, and ``write`` returns once all of them are done.

One retry loop for every transient failure:
- documents the cluster rejects with 429 (queue full: backpressure, not a fault of the
  document), or a whole request refused with 429, are sent again after an exponential
  backoff (``INITIAL_BACKOFF_S`` doubling up to ``MAX_BACKOFF_S``, from the start again
  once documents are taken);
- documents that fail because the cluster does not answer (connection refused, timeout) or
  answers 502/503/504 (node closing, shards not yet recovered) are sent again every
  ``UNAVAILABLE_PAUSE_S``;
- documents refused for the index's state, not their own (``index_fault``: a cluster
  block, a closed or missing index, an alias without a write index, a missing permission,
  a strict mapping without the product's fields), or a whole request refused with 401/403,
  are sent again after the same backoff as 429s, and the wait is logged once per cause;
- whichever it is, once ``unavailable_timeout_s`` has passed without a document of the
  request taken, ``IndexUnavailableError`` (the index's state) or
  ``ClusterUnavailableError`` (the cluster's) stops the job, whose checkpoint covers
  everything written before: nothing is dead-lettered for the cluster's state.
A request the cluster refuses as a whole (400: an id over 512 bytes, a body its parser
refuses such as ``NaN``; 413: too large), or that cannot even be serialised, is split in
halves until the documents at fault stand alone: they are refused, each with its reason,
and the others are written. Every other outcome (written, 409 conflict, refused) is final
and reported per document.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass

from milco_os.engines import Engine, ErrorKind
from milco_os.engines.base import UNAVAILABLE_STATUSES, one_line
from milco_os.errors import UNAVAILABLE_TIMEOUT_S, ClusterUnavailableError, IndexUnavailableError

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.5
RETRIED = ("rejected", "index", "unavailable")  # why a document is sent again: 429, the index's state, the cluster's
MAX_BACKOFF_S = 20.0
UNAVAILABLE_PAUSE_S = 2.0


@dataclass
class BulkCounters:
    """What a writer rode out: documents rejected with 429 (and retried), and waits for an unavailable cluster."""

    rejected_429: int = 0
    unavailable_retries: int = 0
    index_fault_retries: int = 0


@dataclass(frozen=True)
class BulkResult:
    """One document's outcome: written, or refused with the cluster's status and reason."""

    doc_id: str
    ok: bool
    status: int | str | None = None
    error: object = None


class BulkWriter:
    """Writes batches of bulk actions and reports one result per action, in the actions' order.

    An action is ``{"_index", "_id", "_source"}`` plus optional ``routing``, ``if_seq_no`` / ``if_primary_term``.
    """

    def __init__(self, engine: Engine, *, unavailable_timeout_s: float = UNAVAILABLE_TIMEOUT_S, pipeline: str | None = None,
                 max_bytes: int | None = None) -> None:
        self.engine = engine
        self.pipeline = pipeline  # instead of the index's default pipeline, when given
        self.unavailable_timeout_s = unavailable_timeout_s
        self.max_bytes = max_bytes  # the most bytes of one request's body (None: no bound)
        self.counters = BulkCounters()
        self.counting = threading.Lock()  # writes may run in several threads at once
        self.causes_logged: set[str] = set()

    def write(self, actions: list[dict]) -> list[BulkResult]:
        """``results[i]`` is the outcome of ``actions[i]``, once every request of them is done; raises
        ClusterUnavailableError after a long outage."""
        if self.max_bytes is None:
            return self._write_request(actions)
        results: list[BulkResult] = []
        for part in request_slices([request_bytes(action) for action in actions], self.max_bytes):
            results += self._write_request(actions[part])
        return results

    def _write_request(self, actions: list[dict]) -> list[BulkResult]:
        """The actions of one request, sent until each has a final result."""
        results: list[BulkResult | None] = [None] * len(actions)
        pending = list(range(len(actions)))
        backoffs = 0
        waited_since: float | None = None
        while pending:
            outcomes = dict(zip(pending, self._send([actions[i] for i in pending])))
            waiting = {kind: [i for i in pending if outcomes[i][1] == kind] for kind in RETRIED}
            for i in pending:
                result, retry = outcomes[i]
                if retry is None:
                    results[i] = result
            with self.counting:
                self.counters.rejected_429 += len(waiting["rejected"])
                self.counters.index_fault_retries += len(waiting["index"])
            if waiting["index"]:
                self._log_wait(outcomes[waiting["index"][0]][0])
            if any(waiting.values()):
                now = time.monotonic()
                if waited_since is None or any(results[i] is not None for i in pending):
                    waited_since, backoffs = now, 0  # documents settled: progress resets the clock and backoff
                if now - waited_since > self.unavailable_timeout_s:
                    raise self._timed_out(waiting, outcomes)
            if waiting["rejected"] or waiting["index"]:
                time.sleep(min(INITIAL_BACKOFF_S * 2 ** backoffs, MAX_BACKOFF_S))
                backoffs += 1
            if waiting["unavailable"]:
                with self.counting:
                    self.counters.unavailable_retries += 1
                time.sleep(UNAVAILABLE_PAUSE_S)
            pending = [i for i in pending if results[i] is None]
        return [result for result in results if result is not None]

    def _send(self, actions: list[dict]) -> list[tuple[BulkResult, str | None]]:
        """One ``_bulk`` request (split while refused as a whole): per action its result and whether to
        retry it ('rejected', 'unavailable')."""
        try:
            response = self.engine.bulk([line for action in actions for line in operation(action)], self.pipeline)
        except Exception as exc:
            kind, status = self.engine.classify(exc), self.engine.status(exc)
            if kind in (ErrorKind.AUTHENTICATION, ErrorKind.AUTHORIZATION):
                retry = "index"
                exc = {"type": kind.value, "reason": self.engine.reason(exc)}
            elif status == 429:
                retry = "rejected"
            elif kind is ErrorKind.CONNECTION or status in UNAVAILABLE_STATUSES:
                retry = "unavailable"
            elif isinstance(exc, UnicodeError) or kind is ErrorKind.BAD_REQUEST or status == 413:
                if len(actions) > 1:
                    middle = len(actions) // 2
                    return self._send(actions[:middle]) + self._send(actions[middle:])
                reason = one_line(exc) if isinstance(exc, UnicodeError) else self.engine.reason(exc)
                return [(BulkResult(str(actions[0]["_id"]), False, status, {"type": type(exc).__name__,
                                                                            "reason": reason}), None)]
            else:
                raise
            return [(BulkResult(str(action["_id"]), False, status, exc), retry) for action in actions]
        outcomes = []
        for action, item in zip(actions, response["items"]):
            info = next(iter(item.values()))
            status, error = info.get("status"), info.get("error")
            ok = error is None and isinstance(status, int) and status < 300
            retry = None if ok else "index" if index_fault(status, error) else "rejected" if status == 429 else \
                "unavailable" if status in UNAVAILABLE_STATUSES else None
            outcomes.append((BulkResult(str(info.get("_id", action["_id"])), ok, status, error), retry))
        refused = [i for i, (result, retry) in enumerate(outcomes) if result.status == 400 and retry is None]
        if len(refused) > 1:
            # A document the cluster cannot parse may fail the items after it with its own error: the first
            # refused one is sent alone, the others again together, until each stands or falls on its own.
            first, others = refused[0], refused[1:]
            outcomes[first] = self._send([actions[first]])[0]
            for i, outcome in zip(others, self._send([actions[i] for i in others])):
                outcomes[i] = outcome
        return outcomes

    def _log_wait(self, result: BulkResult) -> None:
        """One warning per cause the index refuses writes for, naming it."""
        cause = index_fault(result.status, result.error) or "refused"
        with self.counting:
            first = cause not in self.causes_logged
            self.causes_logged.add(cause)
        if first:
            log.warning("the index refuses writes (%s): waiting up to %g s for it to take them again",
                        cause, self.unavailable_timeout_s)

    def _timed_out(self, waiting: dict[str, list[int]], outcomes: dict) -> Exception:
        """The error that stops the job after the wait: the index's fault if documents wait for it, else the
        cluster's."""
        if waiting["index"]:
            result = outcomes[waiting["index"][0]][0]
            return IndexUnavailableError(
                f"the cluster at {self.engine.url} has refused writes for {self.unavailable_timeout_s:g} s "
                f"({len(waiting['index'])} document(s) waiting): {index_fault(result.status, result.error)}",
                hint="lift the block, open or create the index, grant the role write access or fix the mapping; "
                     "then re-run the same command with --resume (nothing was dead-lettered).")
        left = waiting["unavailable"] + waiting["rejected"]
        return self._outage(len(left), outcomes[left[0]][0].error)

    def _outage(self, waiting: int, reason: object) -> ClusterUnavailableError:
        if isinstance(reason, dict):  # a document's error in the bulk response
            reason = f"{reason.get('type', 'error')}: {reason.get('reason', '')}"
        return ClusterUnavailableError(
            f"the cluster at {self.engine.url} has not taken writes for {self.unavailable_timeout_s:g} s "
            f"({waiting} document(s) waiting): {one_line(reason)}",
            hint="bring the cluster back, then re-run the same command with --resume.",
        )


# Error types a bulk item fails with for the index's state, whatever the document.
INDEX_FAULT_TYPES = ("cluster_block_exception", "index_closed_exception", "index_not_found_exception",
                     "security_exception", "authentication", "authorization")
NO_WRITE_INDEX = re.compile(r"no write index is defined for alias")
# A strict mapping refusing a field the product writes (its vector and metadata fields all start so).
PRODUCT_FIELD_REFUSED = re.compile(r"dynamic introduction of \[milco_\w*\]")


def index_fault(status: int | str | None, error: object) -> str | None:
    """The cause, in one line, when a bulk item failed for the index's state rather than the document's content
    (None: the document's own fault, or no fault)."""
    if not isinstance(error, dict):
        return None
    kind, reason = str(error.get("type", "")), str(error.get("reason", ""))
    if (kind in INDEX_FAULT_TYPES or status in (401, 403) or NO_WRITE_INDEX.search(reason)
            or (kind == "strict_dynamic_mapping_exception" and PRODUCT_FIELD_REFUSED.search(reason))):
        return one_line(f"{kind}: {reason}")
    return None


def operation(action: dict) -> list[dict]:
    """The ``_bulk`` action line and source line of an index action."""
    header = {"_index": action["_index"], "_id": action["_id"]}
    header.update({key: action[key] for key in ("routing", "if_seq_no", "if_primary_term")
                   if action.get(key) is not None})
    return [{"index": header}, action["_source"]]


def request_bytes(action: dict) -> int:
    """The bytes ``action`` adds to a ``_bulk`` body: its two lines as both clients serialise them, with newlines."""
    return sum(len(json.dumps(line, default=_plain, ensure_ascii=False, separators=(",", ":"))
                   .encode("utf-8", "surrogatepass")) + 1 for line in operation(action))


def _plain(value: object) -> object:
    """A JSON stand-in for what the clients' serialisers convert (numpy values, dates), close enough to size it."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def request_slices(sizes: list[int], max_bytes: int) -> list[slice]:
    """Consecutive runs of actions (by their ``sizes`` in bytes), each within ``max_bytes`` unless it is a single
    action larger than that."""
    parts, start, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > max_bytes:
            parts.append(slice(start, i))
            start, total = i, 0
        total += size
    return parts + [slice(start, len(sizes))] if sizes else []
