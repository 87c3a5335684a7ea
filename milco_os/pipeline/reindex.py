"""Reindexing an existing index into a MILCO index (or enriching it in place), resumably and in parallel.

Reading: a point in time (PIT) with ``search_after``, one slice per worker, sorted on
``_shard_doc`` (Elasticsearch) or ``_id`` (OpenSearch has no ``_shard_doc``; ``_id`` is
unique, so a cursor also stays valid under a new PIT). Clusters without PIT, or that
refuse the sort, are read with a sliced scroll instead. Each slice's progress (its PIT, its cursor, its
counts) is checkpointed after every written batch; ``--resume`` continues each
unfinished slice after its cursor (with a scroll: from the start), and documents
already written with the same model, pruning and text are skipped, so nothing is
encoded twice.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from typing import Any, Callable, Iterator

from milco_os.encoding.contract import SparseEncoder
from milco_os.engines import Engine, ErrorKind, engine_for, plain
from milco_os.errors import UNAVAILABLE_TIMEOUT_S, ClusterUnavailableError, MilcoOsError
from milco_os.index.fields import META_FIELD
from milco_os.index.handle import (
    IndexHandle,
    chosen_vector_field,
    stored_bulk_pipeline,
    stored_mapping,
    stored_vector_field,
    stored_vectors_in_source,
)
from milco_os.index.setup import ensure_pipelines, incompatibilities, index_body, pipelines_installed
from milco_os.index.vector_fields import VectorField, every_vector_path
from milco_os.pipeline.encode_stage import MILCO_FIELDS
from milco_os.pipeline.checkpoints import SliceCheckpoint, SliceState
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.documents import SourceDocument
from milco_os.pipeline.ingest import BatchReport, IngestOptions, IngestSummary, Ingestor
from milco_os.pipeline.reindex_workers import WorkerPool, WorkerSetup, slice_groups

PIT_KEEP_ALIVE = "30m"
MAX_READ_BACKOFF_S = 5.0
COPIED_SETTINGS = ("analysis", "similarity", "mapping", "max_result_window", "number_of_shards", "refresh_interval")


class ReindexError(MilcoOsError):
    exit_code = 8


def dest_body(engine: Engine, source: str, field: VectorField, *, passages: bool = False,
              default_pipeline: bool = True, vectors_in_source: bool | None = None) -> dict:
    """``mappings/`` merged with the source index's own mapping and copyable settings.

    The source's own MILCO vector fields, of whichever strategy, give way to ``field``'s; its
    ``_source`` excludes stay, with the vector fields left out of ``_source`` unless
    ``vectors_in_source`` (None: as in the source index).
    """
    mapping = stored_mapping(engine, source)
    if vectors_in_source is None:
        vectors_in_source = stored_vectors_in_source(mapping, stored_vector_field(engine, mapping))
    body = index_body(field, passages=passages, shards=1, replicas=1, default_pipeline=default_pipeline,
                      vectors_in_source=vectors_in_source)
    own_excludes = [pattern for pattern in (mapping.get("_source") or {}).get("excludes") or ()
                    if not any(fnmatchcase(path, pattern) for path in every_vector_path())]
    excludes = own_excludes + body["mappings"].get("_source", {}).get("excludes", [])
    own = {name: spec for name, spec in mapping.get("properties", {}).items() if name not in MILCO_FIELDS}
    problems = [p for p in incompatibilities({"properties": own}, body) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{source}' has fields that clash with the MILCO fields: {'; '.join(problems)}.")
    properties = {**own, **body["mappings"]["properties"]}
    body["mappings"] = {**mapping, **body["mappings"], "properties": properties}
    body["mappings"]["_source"] = {**(mapping.get("_source") or {}), "excludes": excludes}
    if not excludes:
        del body["mappings"]["_source"]["excludes"]
    settings = next(iter(plain(engine.client.indices.get_settings(index=source)).values()))["settings"]["index"]
    body["settings"]["index"].update({key: settings[key] for key in COPIED_SETTINGS if key in settings})
    body["settings"]["index"]["number_of_replicas"] = settings.get("number_of_replicas", "1")
    return body


def ensure_milco_mapping(engine: Engine, index: str, field: VectorField) -> None:
    """Add the MILCO fields to an existing index's mapping (for enriching in place)."""
    ensure_pipelines(engine)
    wanted = index_body(field, passages=False, shards=1, replicas=1)
    mapping = stored_mapping(engine, index)
    problems = [p for p in incompatibilities(mapping, wanted) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{index}' cannot take MILCO fields: {'; '.join(problems)}.")
    needed_settings = field.settings_needed_in_place()
    if needed_settings:
        settings = next(iter(plain(engine.client.indices.get_settings(index=index)).values()))["settings"]["index"]
        missing = [f"index.{name}: {value}" for name, value in needed_settings.items()
                   if str(settings.get(name)).lower() != str(value).lower()]
        if missing:
            raise ReindexError(f"Index '{index}' cannot take {field.type_name} fields in place: it needs "
                               f"{', '.join(missing)}, set only when an index is created.",
                               hint="reindex into a new index with 'milco-os reindex --vector-field "
                                    f"{field.type_name}'.")
    milco = {key: wanted["mappings"]["properties"][key] for key in (*field.keys.fields, META_FIELD)}
    meta = {**(mapping.get("_meta") or {}), "milco_os": wanted["mappings"]["_meta"]["milco_os"]}
    engine.client.indices.put_mapping(index=index, body={"properties": milco, "_meta": meta})


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


@dataclass(frozen=True)
class ReindexPlan:
    """SOURCE -> DEST (``in_place``: DEST is SOURCE, enriched) with these options, read in ``slices``."""

    source: str
    dest: str
    options: IngestOptions
    slices: int = 1
    resume: bool = False
    alias: str | None = None
    id_field: str | None = None
    vector_type: str | None = None
    in_place: bool = False
    field_parameters: Any = None  # a new DEST's index parameters (its vector-field type's dataclass)
    vectors_in_source: bool | None = None  # for a new DEST; None: as in SOURCE
    workers: int = 1  # processes on this host that share the slices


class Reindexer:
    """Runs a reindex or an enrich over all slices in parallel, each slice its own ingest pipeline; with
    ``plan.workers`` > 1, the slices are dealt to that many processes (each connecting through ``worker_setup``)."""

    def __init__(self, client: Any, encoder: SparseEncoder, plan: ReindexPlan, checkpoint: SliceCheckpoint,
                 dead_letters: DeadLetters, on_progress: Callable[[int, int], None] = lambda s, n: None,
                 log_line: Callable[[dict], None] = lambda line: None,
                 worker_setup: WorkerSetup | None = None) -> None:
        self.engine, self.encoder, self.plan = engine_for(client), encoder, plan
        self.checkpoint, self.dead_letters = checkpoint, dead_letters
        self.on_progress, self.log_line, self.worker_setup = on_progress, log_line, worker_setup
        self.dest: IndexHandle | None = None  # known once ``run`` prepared it

    def run(self) -> IngestSummary:
        """Every unfinished slice of the checkpoint, in threads (or in ``plan.workers`` processes); the summary of
        the whole job, earlier runs included."""
        started = time.perf_counter()
        dest = self.dest = self._prepare_dest()
        use_pit = supports_pit_reading(self.engine, self.plan.source)
        pending = [n for n, state in self.checkpoint.slices.items() if not state.done]
        if self.plan.workers > 1 and len(pending) > 1:
            summaries = self._run_in_processes(dest, pending, use_pit)
        else:
            summaries = [self.run_slices(dest, pending, use_pit)]
        total = IngestSummary()
        for summary in summaries:
            total.merge(summary)
        # A resumed run reports the whole job: what earlier runs did comes from the checkpoint.
        total.read, total.written, total.skipped, total.failed = (
            sum(getattr(state, name) for state in self.checkpoint.slices.values())
            for name in ("read", "written", "skipped", "failed"))
        total.elapsed_s = time.perf_counter() - started
        return total

    def run_slices(self, dest: IndexHandle, slice_ids: list[int], use_pit: bool) -> IngestSummary:
        """These slices, each in its own thread; the first error is raised once every slice stopped."""
        summaries: dict[int, IngestSummary] = {}
        errors: list[BaseException] = []

        def work(slice_id: int) -> None:
            try:
                summaries[slice_id] = self._run_slice(dest, slice_id, use_pit)
            except BaseException as exc:  # reported after every slice stopped
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,), name=f"milco-slice-{n}") for n in slice_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        total = IngestSummary()
        for summary in summaries.values():
            total.merge(summary)
        return total

    def _run_in_processes(self, dest: IndexHandle, pending: list[int], use_pit: bool) -> list[IngestSummary]:
        if self.worker_setup is None:
            raise ValueError("running slices in worker processes needs a WorkerSetup")

        def log_state(slice_id: int, state: SliceState) -> None:
            self.log_line({"time": time.time(), "slice": slice_id, "read": state.read, "written": state.written,
                           "skipped": state.skipped, "failed": state.failed})

        pool = WorkerPool(self.worker_setup, self.checkpoint, self.dead_letters, self.on_progress, log_state)
        handle = (dest.name, dest.field, dest.vectors_in_source, dest.bulk_pipeline)
        groups = slice_groups(pending, self.plan.workers)
        return pool.run(groups, functools.partial(run_slice_group, self.plan, handle, use_pit))

    def _prepare_dest(self) -> IndexHandle:
        plan, engine = self.plan, self.engine
        exists = engine.client.indices.exists(index=plan.dest)
        field = chosen_vector_field(engine, stored_mapping(engine, plan.dest) if exists else None, plan.vector_type,
                                    plan.field_parameters)
        if plan.in_place:
            ensure_milco_mapping(engine, plan.dest, field)
        elif not exists:
            default_pipeline = pipelines_installed(ensure_pipelines(engine))
            engine.create_index_unless_exists(plan.dest, dest_body(
                engine, plan.source, field, passages=plan.options.passages, default_pipeline=default_pipeline,
                vectors_in_source=plan.vectors_in_source))
        return IndexHandle(engine, plan.dest, field, stored_vectors_in_source(stored_mapping(engine, plan.dest), field),
                           stored_bulk_pipeline(engine, plan.dest))

    def _run_slice(self, dest: IndexHandle, slice_id: int, use_pit: bool) -> IngestSummary:
        state = self.checkpoint.slices[slice_id]
        reader = SliceReader(self.engine, self.plan.source, slice_id, self.plan.slices, state,
                             self.plan.options.batch_size, use_pit, self.plan.id_field, guard_writes=self.plan.in_place,
                             unavailable_timeout_s=self.plan.options.unavailable_timeout_s)
        options = self.plan.options
        if self.plan.resume and not options.skip_existing:
            # Documents written before an interruption are recognised and not encoded again.
            options = replace(options, skip_existing=True)

        def batch_done(report: BatchReport) -> None:
            state.advance(report)
            self.checkpoint.save()
            self.log_line({"time": time.time(), "slice": slice_id, "read": state.read, "written": state.written,
                           "skipped": state.skipped, "failed": state.failed})

        ingestor = Ingestor(dest, self.encoder, options, self.dead_letters,
                            on_progress=lambda n: self.on_progress(slice_id, n), on_batch_done=batch_done)
        summary = ingestor.run(reader)
        state.done = True
        self.checkpoint.save()
        return summary


def run_slice_group(plan: ReindexPlan, handle: tuple, use_pit: bool, client: Any, encoder: SparseEncoder,
                    checkpoint: Any, dead_letters: DeadLetters, on_progress: Callable[[int, int], None]
                    ) -> IngestSummary:
    """A worker process's share of a job: the checkpoint's slices into the prepared DEST (``handle``: the
    IndexHandle's fields but its engine)."""
    reindexer = Reindexer(client, encoder, plan, checkpoint, dead_letters, on_progress=on_progress)
    dest = reindexer.dest = IndexHandle(reindexer.engine, *handle)
    return reindexer.run_slices(dest, list(checkpoint.slices), use_pit)


def move_alias(client, alias: str, dest: str, source: str, dead_lettered: int) -> str:
    """Point ``alias`` at ``dest`` only when SRC count == DEST count + dead-lettered; say what was done."""
    client.indices.refresh(index=dest)
    source_count = client.count(index=source)["count"]
    dest_count = client.count(index=dest)["count"]
    if source_count != dest_count + dead_lettered:
        raise ReindexError(
            f"Alias '{alias}' left alone: {source} has {source_count} documents but {dest} has {dest_count} "
            f"and {dead_lettered} went to the dead-letter file.",
            hint="look at the dead-letter file and re-run with --resume or --skip-existing.",
        )
    is_alias = client.indices.exists_alias(name=alias)
    if not is_alias and client.indices.exists(index=alias):
        raise ReindexError(f"'{alias}' is an index, not an alias: it cannot be moved onto {dest}.")
    current = list(plain(client.indices.get_alias(name=alias)).keys()) if is_alias else []
    actions = [{"remove": {"index": index, "alias": alias}} for index in current if index != dest]
    actions.append({"add": {"index": dest, "alias": alias}})
    client.indices.update_aliases(body={"actions": actions})
    return f"alias {alias}: {', '.join(current) or '(none)'} -> {dest}"
