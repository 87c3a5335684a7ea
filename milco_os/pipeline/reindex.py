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

import json
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from milco_os.engines import Engine, ErrorKind, engine_for, plain
from milco_os.errors import MilcoOsError
from milco_os.index.fields import EN_FIELD, M_FIELD, META_FIELD
from milco_os.index.setup import (
    RANK_FEATURES,
    cluster_index_body,
    ensure_pipelines,
    incompatibilities,
    pipelines_installed,
)
from milco_os.pipeline.ingest import DeadLetters, IngestOptions, IngestSummary, Ingestor, Record
from milco_os.search.searcher import Encoder

PIT_KEEP_ALIVE = "30m"
COPIED_SETTINGS = ("analysis", "similarity", "mapping", "max_result_window", "number_of_shards", "refresh_interval")


class ReindexError(MilcoOsError):
    exit_code = 8


@dataclass
class SliceState:
    """A slice's checkpoint: where reading stopped, and what was done so far."""

    pit: str | None = None
    cursor: list | None = None
    done: bool = False
    read: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class Checkpoint:
    """All slices' progress, saved as JSON next to the dead-letter file."""

    path: Path
    source: str
    dest: str
    slices: dict[int, SliceState] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load_or_new(cls, path: Path, source: str, dest: str, slices: int, resume: bool) -> Checkpoint:
        if resume and path.is_file():
            data = json.loads(path.read_text())
            if (data["source"], data["dest"], len(data["slices"])) != (source, dest, slices):
                raise ReindexError(f"{path} belongs to a reindex of {data['source']} -> {data['dest']} with "
                                   f"{len(data['slices'])} slices, not this one.",
                                   hint="use the same --source, --dest and --slices, or drop --resume.")
            return cls(path, source, dest, {int(k): SliceState(**v) for k, v in data["slices"].items()})
        return cls(path, source, dest, {n: SliceState() for n in range(slices)})

    def save(self) -> None:
        with self.lock:
            data = {"source": self.source, "dest": self.dest,
                    "slices": {str(n): asdict(state) for n, state in self.slices.items()}}
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1))
            temporary.replace(self.path)


def dest_body(client, source: str, *, passages: bool = False, vector_type: str = RANK_FEATURES,
              default_pipeline: bool = True) -> dict:
    """``mappings/`` merged with the source index's own mapping and copyable settings."""
    body = cluster_index_body(client, passages=passages, shards=1, replicas=1, vector_type=vector_type,
                              default_pipeline=default_pipeline)
    mapping = next(iter(plain(client.indices.get_mapping(index=source)).values()))["mappings"]
    problems = [p for p in incompatibilities(mapping, body) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{source}' has fields that clash with the MILCO fields: {'; '.join(problems)}.")
    properties = {**mapping.get("properties", {}), **body["mappings"]["properties"]}
    body["mappings"] = {**mapping, **body["mappings"], "properties": properties}
    settings = next(iter(plain(client.indices.get_settings(index=source)).values()))["settings"]["index"]
    body["settings"]["index"].update({key: settings[key] for key in COPIED_SETTINGS if key in settings})
    body["settings"]["index"]["number_of_replicas"] = settings.get("number_of_replicas", "1")
    return body


def ensure_milco_mapping(client, index: str, vector_type: str = RANK_FEATURES) -> None:
    """Add the MILCO fields to an existing index's mapping (for enriching in place)."""
    ensure_pipelines(client)
    wanted = cluster_index_body(client, passages=False, shards=1, replicas=1, vector_type=vector_type)
    mapping = next(iter(plain(client.indices.get_mapping(index=index)).values()))["mappings"]
    problems = [p for p in incompatibilities(mapping, wanted) if "missing" not in p]
    if problems:
        raise ReindexError(f"Index '{index}' cannot take MILCO fields: {'; '.join(problems)}.")
    milco = {key: wanted["mappings"]["properties"][key] for key in (EN_FIELD, M_FIELD, META_FIELD)}
    meta = {**(mapping.get("_meta") or {}), "milco_os": wanted["mappings"]["_meta"]["milco_os"]}
    client.indices.put_mapping(index=index, body={"properties": milco, "_meta": meta})


def supports_pit_reading(engine: Engine, index: str) -> bool:
    """True when the cluster has PIT and takes the engine's PIT sort."""
    if not engine.supports_pit():
        return False
    pit = engine.open_pit(index, "1m")
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
    """Pages of one slice of an index, as Records carrying their cursor, seq_no and primary term."""

    def __init__(self, client, index: str, slice_id: int, slices: int, state: SliceState, page_size: int,
                 use_pit: bool, id_field: str | None = None) -> None:
        self.engine = engine_for(client)
        self.client, self.index, self.slice_id, self.slices = client, index, slice_id, slices
        self.state, self.page_size, self.use_pit, self.id_field = state, page_size, use_pit, id_field

    def records(self) -> Iterator[Record]:
        """Each hit as a Record; its id is ``_id``, or the ``id_field`` value when one is named."""
        pages = self._pit_pages() if self.use_pit else self._scroll_pages()
        for hits in pages:
            for hit in hits:
                doc_id = hit["_id"]
                if self.id_field and hit["_source"].get(self.id_field) not in (None, ""):
                    doc_id = str(hit["_source"][self.id_field])
                yield Record(line=0, source=hit["_source"], doc_id=doc_id, seq_no=hit.get("_seq_no"),
                             primary_term=hit.get("_primary_term"), cursor=hit.get("sort"))

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
            hits = plain(self.client.search(body=body))["hits"]["hits"]
            if not hits:
                return
            cursor = hits[-1]["sort"]
            yield hits
            if len(hits) < self.page_size:
                return

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
    source: str
    dest: str
    options: IngestOptions
    slices: int = 1
    resume: bool = False
    alias: str | None = None
    id_field: str | None = None
    vector_type: str = RANK_FEATURES


class Reindexer:
    """Runs a reindex (``options.in_place`` false) or an enrich (true) over all slices in parallel."""

    def __init__(self, client, encoder: Encoder, plan: ReindexPlan, checkpoint: Checkpoint,
                 dead_letters: DeadLetters, on_progress: Callable[[int, int], None] = lambda s, n: None,
                 log_line: Callable[[dict], None] = lambda line: None) -> None:
        self.client, self.encoder, self.plan = client, encoder, plan
        self.checkpoint, self.dead_letters = checkpoint, dead_letters
        self.on_progress, self.log_line = on_progress, log_line

    def run(self) -> IngestSummary:
        started = time.perf_counter()
        self._prepare_dest()
        use_pit = supports_pit_reading(engine_for(self.client), self.plan.source)
        summaries: dict[int, IngestSummary] = {}
        errors: list[BaseException] = []

        def work(slice_id: int) -> None:
            try:
                summaries[slice_id] = self._run_slice(slice_id, use_pit)
            except BaseException as exc:  # reported after every slice stopped
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,), name=f"milco-slice-{n}")
                   for n, state in self.checkpoint.slices.items() if not state.done]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        total = IngestSummary()
        for state in self.checkpoint.slices.values():
            total.read += state.read
            total.written += state.written
            total.skipped += state.skipped
            total.failed += state.failed
        for summary in summaries.values():
            total.no_text += summary.no_text
            total.conflicts += summary.conflicts
            total.encode_s += summary.encode_s
            total.bulk_s += summary.bulk_s
            total.duplicate_ids += summary.duplicate_ids
            total.rejected_429 += summary.rejected_429
            total.unavailable_retries += summary.unavailable_retries
        total.elapsed_s = time.perf_counter() - started
        return total

    def _prepare_dest(self) -> None:
        plan = self.plan
        if plan.options.in_place:
            ensure_milco_mapping(self.client, plan.dest, plan.vector_type)
            return
        default_pipeline = pipelines_installed(ensure_pipelines(self.client))
        if not self.client.indices.exists(index=plan.dest):
            body = dest_body(self.client, plan.source, passages=plan.options.passages, vector_type=plan.vector_type,
                             default_pipeline=default_pipeline)
            self.client.indices.create(index=plan.dest, body=body)

    def _run_slice(self, slice_id: int, use_pit: bool) -> IngestSummary:
        state = self.checkpoint.slices[slice_id]
        reader = SliceReader(self.client, self.plan.source, slice_id, self.plan.slices, state,
                             self.plan.options.batch_size, use_pit, self.plan.id_field)
        options = self.plan.options
        if self.plan.resume and not options.skip_existing:
            # Documents written before an interruption are recognised and not encoded again.
            options = replace(options, skip_existing=True)
        ingestor = Ingestor(self.client, self.encoder, options, self.dead_letters,
                            on_progress=lambda n: self.on_progress(slice_id, n))
        before = (state.read, state.written, state.skipped, state.failed)

        def batch_done(last: Record) -> None:
            summary = ingestor.summary
            state.cursor = last.cursor
            state.read, state.written = before[0] + summary.read, before[1] + summary.written
            state.skipped, state.failed = before[2] + summary.skipped, before[3] + summary.failed
            self.checkpoint.save()
            self.log_line({"time": time.time(), "slice": slice_id, "read": state.read, "written": state.written,
                           "skipped": state.skipped, "failed": state.failed})

        ingestor.on_batch_done = batch_done
        summary = ingestor.run(reader.records())
        state.done = True
        self.checkpoint.save()
        return summary


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
    if client.indices.exists(index=alias) and not client.indices.exists_alias(name=alias):
        raise ReindexError(f"'{alias}' is an index, not an alias: it cannot be moved onto {dest}.")
    current = list(plain(client.indices.get_alias(name=alias)).keys()) if client.indices.exists_alias(name=alias) else []
    actions = [{"remove": {"index": index, "alias": alias}} for index in current if index != dest]
    actions.append({"add": {"index": dest, "alias": alias}})
    client.indices.update_aliases(body={"actions": actions})
    return f"alias {alias}: {', '.join(current) or '(none)'} -> {dest}"
