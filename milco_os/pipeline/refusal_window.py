"""A systematic refusal: the cluster refusing most of a run of consecutive documents for one and the same cause.

A cause the bulk writer does not know as the index's fault (``bulk_writer.index_fault``) is
taken as the document's, and the document is dead-lettered. When one such cause refuses most
of the last ``WINDOW`` documents sent, it is the index's or the job's fault after all (a
mapping that refuses every document, a pipeline that fails on each one): the job stops
before dead-lettering the rest, with its checkpoint, and says why.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Iterable

from milco_os.errors import IndexUnavailableError
from milco_os.pipeline.documents import Outcome

WINDOW = 100  # consecutive documents sent to the cluster
SYSTEMATIC_SHARE = 0.9  # of them refused for one cause


class SystematicRefusalError(IndexUnavailableError):
    """Most of a run of consecutive documents refused for one cause: stopped rather than dead-lettered."""


class RefusalWindow:
    """The causes of the last ``size`` documents sent to the cluster (None: taken)."""

    def __init__(self, size: int = WINDOW, share: float = SYSTEMATIC_SHARE) -> None:
        self.size, self.share = size, share
        self.causes: deque[str | None] = deque(maxlen=size)

    def check(self, outcomes: Iterable[Outcome]) -> None:
        """Add a batch's outcomes (those the cluster answered); raises SystematicRefusalError when one cause
        refused at least ``share`` of a full window."""
        for outcome in outcomes:
            if outcome.kind in ("written", "conflict") or outcome.cause is not None:
                self.causes.append(outcome.cause)
        if len(self.causes) < self.size:
            return
        cause, count = Counter(cause for cause in self.causes if cause is not None).most_common(1)[0] \
            if any(self.causes) else (None, 0)
        if cause is not None and count >= self.share * self.size:
            raise SystematicRefusalError(
                f"the cluster refused {count} of the last {self.size} documents for the same cause ({cause}): "
                "that is the index's or the job's fault, not theirs; stopped before dead-lettering the rest",
                hint="fix the index's mapping or ingest pipeline (or the input, if every document is at fault), then "
                     "re-run the same command with --resume.")
