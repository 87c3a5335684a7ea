"""A job's index checked after each batch: deleted mid-job, it is not the index the job began writing into.

A bulk write into a deleted index succeeds: the cluster creates a new index of that name
(``action.auto_create_index``), without the MILCO mapping, and every later write goes there.
So a job that knows its index's uuid (``index.handle.pinned``) compares it after each written
batch, before the checkpoint counts the batch, and stops when it changed.
"""

from __future__ import annotations

from milco_os.engines import ErrorKind
from milco_os.errors import IndexUnavailableError
from milco_os.index.handle import IndexHandle, index_uuid


class SameIndexGuard:
    """Stops a job whose index was deleted since it began (no check where the handle knows no uuid)."""

    def __init__(self, index: IndexHandle) -> None:
        self.index = index

    def check(self) -> None:
        """An IndexUnavailableError when the index now has another uuid, or none. A cluster that cannot answer now
        (down, 502/503/504, a permission taken away) is left to the bulk writer, which waits for it: the next
        batch checks again."""
        if self.index.uuid is None:
            return
        try:
            now = index_uuid(self.index.engine, self.index.name)
        except Exception as exc:
            kind = self.index.engine.classify(exc)
            if kind is None:
                raise
            if kind is not ErrorKind.NOT_FOUND:
                return
            now = None
        if now == self.index.uuid:
            return
        remade = ", and the cluster made a new one for the writes since, without the MILCO mapping" if now else ""
        raise IndexUnavailableError(
            f"index '{self.index.name}' was deleted during the job{remade}; the documents written before went with it.",
            hint=f"delete '{self.index.name}' if the cluster made it anew, set it up again ('milco-os setup'), and run "
                 "the whole job again without --resume (its checkpoint counts documents of the deleted index).")
