"""One reindex (or enrich) split over hosts: each host takes a share of the slices, with its own checkpoint,
and the cluster keeps the ledger of which shares are done.

Share K of N takes slices K-1, K-1+N, K-1+2N, ... of the job's ``--slices``. When a share
finishes it records its counts in the job's ledger document (index ``milco-os-jobs``) with a
conditional write, so exactly one share sees the ledger become complete: that one verifies
the counts and moves the alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from milco_os.errors import ReindexError

SHARE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShareError(ReindexError):
    """A share that does not fit the job (more hosts than slices)."""


@dataclass(frozen=True)
class Share:
    """Share ``number`` (1-based) of ``of``."""

    number: int = 1
    of: int = 1

    @classmethod
    def parse(cls, text: str) -> Share:
        match = SHARE_PATTERN.match(text)
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise ValueError(f"'{text}' is not a share K/N with 1 <= K <= N (e.g. 1/3)")
        return cls(int(match[1]), int(match[2]))

    @property
    def whole(self) -> bool:
        return self.of == 1

    def slice_ids(self, slices: int) -> list[int]:
        if slices < self.of:
            raise ShareError(f"{slices} slice(s) cannot be shared by {self.of} hosts: give --slices {self.of} or "
                             "more (the same on every host).")
        return list(range(self.number - 1, slices, self.of))

    @property
    def label(self) -> str:
        """For file names: ``share-K-of-N``; empty for the whole job."""
        return "" if self.whole else f"share-{self.number}-of-{self.of}"

    def __str__(self) -> str:
        return f"{self.number}/{self.of}"
