"""Reading one slice of an index, resumably: a point in time (PIT) with ``search_after``, or a sliced scroll.

The PIT is sorted on ``_shard_doc`` (Elasticsearch) or ``_id`` (OpenSearch has no
``_shard_doc``; ``_id`` is unique, so a cursor also stays valid under a new PIT). Clusters
without PIT, or that refuse the sort, are read with a sliced scroll instead, which a resumed
slice reads from the start.
"""

from __future__ import annotations

import time
from typing import Iterator

from milco_os.engines import Engine, ErrorKind, plain
from milco_os.errors import UNAVAILABLE_TIMEOUT_S, ClusterUnavailableError
from milco_os.pipeline.checkpoints import SliceState
from milco_os.pipeline.documents import SourceDocument

PIT_KEEP_ALIVE = "30m"
MAX_READ_BACKOFF_S = 5.0


def supports_pit_reading(engine: Engine, index: str) -> bool:
    """True when the cluster has PIT, opens one on ``index`` and takes the engine's PIT sort."""
    if not engine.supports_pit():
        return False
    try:
        pit = engine.open_pit(index, "1m")
    except Exception as exc:
        if engine.classify(exc) is not ErrorKind.BAD_REQUEST:
            raise
        return False
    try:
        engine.client.search(body={"size": 1, "sort": engine.pit_sort, "_source": False,
                                   "pit": {"id": pit, "keep_alive": "1m"}})
    except Exception as exc:
        if engine.classify(exc) is not ErrorKind.BAD_REQUEST:
            raise
        return False
    finally:
        engine.close_pit(pit)
    return True


class SliceReader:
    """One slice of an index as a source: each hit a SourceDocument positioned at its sort cursor.

    Its id is ``_id``, or the ``id_field`` value when one is named; its routing is the hit's
    ``_routing`` (so routed and parent/child documents land where the application looks); with ``guard_writes``
    (enrich in place) it carries its seq_no and primary term, so it is written back only if unchanged.
    """

    def __init__(self, engine: Engine, index: str, slice_id: int, slices: int, state: SliceState, page_size: int,
                 use_pit: bool, id_field: str | None = None, guard_writes: bool = False,
                 unavailable_timeout_s: float = UNAVAILABLE_TIMEOUT_S) -> None:
        self.engine, self.client = engine, engine.client
        self.index, self.slice_id, self.slices = index, slice_id, slices
        self.state, self.page_size, self.use_pit, self.id_field = state, page_size, use_pit, id_field
        self.guard_writes, self.unavailable_timeout_s = guard_writes, unavailable_timeout_s

    def __iter__(self) -> Iterator[SourceDocument]:
        pages = self._pit_pages() if self.use_pit else self._scroll_pages()
        for hits in pages:
            for hit in hits:
                doc_id = hit["_id"]
                if self.id_field and hit["_source"].get(self.id_field) not in (None, ""):
                    doc_id = str(hit["_source"][self.id_field])
                guard = (hit["_seq_no"], hit["_primary_term"]) if self.guard_writes and "_seq_no" in hit else None
                yield SourceDocument(hit.get("sort"), doc_id, hit["_source"], routing=hit.get("_routing"),
                                     write_guard=guard)

    def _slice(self) -> dict | None:
        return {"id": self.slice_id, "max": self.slices} if self.slices > 1 else None

    def _pit_pages(self) -> Iterator[list[dict]]:
        if self.state.pit is None or not self._pit_alive(self.state.pit):
            self.state.pit = self.engine.open_pit(self.index, PIT_KEEP_ALIVE)
        cursor = self.state.cursor  # the checkpoint's cursor moves only when a batch is written
        while True:
            body: dict = {"size": self.page_size, "pit": {"id": self.state.pit, "keep_alive": PIT_KEEP_ALIVE},
                          "sort": self.engine.pit_sort, "seq_no_primary_term": True, "track_total_hits": False}
            if self._slice():
                body["slice"] = self._slice()
            if cursor:
                body["search_after"] = cursor
            hits = self._pit_page(body)
            if not hits:
                return
            cursor = hits[-1]["sort"]
            yield hits
            if len(hits) < self.page_size:
                return

    def _pit_page(self, body: dict) -> list[dict]:
        """The hits of one page, never partial: when the PIT lost shards (a node left, a context expired), a new
        PIT is opened and the page read again from the same cursor, until the cluster serves it or
        ``unavailable_timeout_s`` has passed (then ClusterUnavailableError; the checkpoint is at the last batch)."""
        deadline, pause = time.monotonic() + self.unavailable_timeout_s, 0.5
        while True:
            try:
                response = plain(self.client.search(body=body, allow_partial_search_results=False))
                failed = response.get("_shards", {}).get("failed", 0)
                if not failed:
                    return response["hits"]["hits"]
                failure = f"{failed} shard(s) failed"
            except Exception as exc:
                if not self._is_transient(exc):
                    raise
                failure = self.engine.reason(exc)
            if time.monotonic() + pause > deadline:
                raise ClusterUnavailableError(
                    f"Reading slice {self.slice_id} of '{self.index}' failed for {self.unavailable_timeout_s:g} s: "
                    f"{failure}", hint="once the cluster is whole again, re-run with --resume.")
            time.sleep(pause)
            pause = min(2 * pause, MAX_READ_BACKOFF_S)
            try:
                self.state.pit = self.engine.open_pit(self.index, PIT_KEEP_ALIVE)
                body["pit"]["id"] = self.state.pit
            except Exception as exc:
                if not self._is_transient(exc):
                    raise

    def _is_transient(self, exc: BaseException) -> bool:
        """A failure a cluster recovering from a lost node gives: no connection, a missing context, 429 or 5xx."""
        kind, status = self.engine.classify(exc), self.engine.status(exc)
        return kind in (ErrorKind.CONNECTION, ErrorKind.NOT_FOUND) or \
            (kind is ErrorKind.HTTP and status is not None and (status == 429 or status >= 500))

    def _pit_alive(self, pit: str) -> bool:
        try:
            self.client.search(body={"size": 0, "pit": {"id": pit, "keep_alive": PIT_KEEP_ALIVE}})
            return True
        except Exception as exc:
            if self.engine.classify(exc) in (ErrorKind.NOT_FOUND, ErrorKind.BAD_REQUEST) or \
                    self.engine.status(exc) == 500:
                return False
            raise

    def _scroll_pages(self) -> Iterator[list[dict]]:
        self.state.cursor = None
        body: dict = {"size": self.page_size, "sort": ["_doc"], "seq_no_primary_term": True}
        if self._slice():
            body["slice"] = self._slice()
        response = plain(self.client.search(index=self.index, body=body, scroll="10m"))
        scroll_id = response.get("_scroll_id")
        try:
            while response["hits"]["hits"]:
                yield response["hits"]["hits"]
                response = self.engine.scroll(scroll_id, "10m")
                scroll_id = response.get("_scroll_id", scroll_id)
        finally:
            if scroll_id:
                self.engine.clear_scroll(scroll_id)
