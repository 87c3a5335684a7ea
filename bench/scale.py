"""Every MILCO search method next to BM25 as the collection grows to a million documents; ingest rate and index size.

Vectors come from the MILCO-like stand-in of ``standin.py`` (terms per document at the
paper's pruning levels, Zipfian document frequencies, the model's weight ranges), written
through the product's own ingest path (``Ingestor``) with the stand-in in the encoder's
place, onto one local node (ml-commons and neural-search, 4 GB heap unless ``--heap``).

- **Ingest**: docs/s and MB/s of the product against a plain ``parallel_bulk`` of the same
  documents (same stand-in, same fields, no pipeline) on the first ``--baseline-docs``.
- **Index size**: bytes per document after a force-merge for every pruning level, on
  ``--size-docs`` documents each, next to the paper's index sizes.
- **Queries, at each of ``--sizes``**: a ``rank_features`` index and a SEISMIC index (the
  product's defaults) grow by the next documents and are force-merged; the same queries get,
  per method, p50/p95/p99 of the server's ``took`` and of the client's wall time, QPS at 1
  and 4 client threads, recall@10 against the exact top 10 and target-found@10: exact
  ``rank_features`` (both views, and English only), query pruning, milco-os two-phase,
  neural-search's two-phase processor, the product's SEISMIC query (and its first phase
  alone), SEISMIC's engine alone (one ``neural_sparse`` clause of the English terms) and BM25
  (on the same collection: a document's text is its pieces). Then each method's exponent b of
  p50 ~ N^b. SEISMIC goes on to the next size only while the run, as estimated from its
  last step, ends within ``--budget-minutes``; the report says where it stopped.

    python bench/scale.py [--sizes 100000,300000,1000000] [--queries 200] [--budget-minutes 60]
                          [--model CHECKPOINT] [--heap 4g] [--url URL] [--out FILE] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import shlex
import statistics
import sys
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from common import machine, markdown_table
from opensearchpy import helpers
from realism import realism, realism_table
from standin import LEVELS, StandInEncoder, StandInModel

from milco_os.cluster import make_client
from milco_os.cluster_ml.bodies import search_pipeline_body
from milco_os.index.fields import EN_FIELD, QueryTerm
from milco_os.index.handle import IndexHandle
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.setup import ensure_index, index_body
from milco_os.index.seismic_parameters import SeismicIndex, SeismicSearch
from milco_os.pipeline.bulk_loading import bulk_loading
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, IngestSummary, Ingestor
from milco_os.pipeline.sources import DictSource
from milco_os.search import query_dsl as dsl
from milco_os.search.searcher import NEURAL_SPARSE, SearchOptions, build_body
from milco_os.services.opensearch_ml_plugins import ML_DEFAULT_VERSION
from milco_os.services.temporary_node import temporary_node

MAIN_LEVEL = "P80"
BATCH = 500
TWO_PHASE_PIPELINE = "scale-two-phase"
# The paper's SEISMIC index sizes for 32M MIRACL-en passages: unpruned (570 English terms per document, Table 13)
# and P60 (its terms per document interpolated between P50's 286 and P80's 115).
PAPER_SIZES = [{"level": "P0", "terms": 570, "bytes_per_doc": 61e9 / 32e6},
               {"level": "P60", "terms": 229, "bytes_per_doc": 12e9 / 32e6}]


RF_INDEX, SEISMIC_INDEX = "scale-rf", "scale-seismic"
# How a method's request is made from the query: the product's body (build_body), the same on the English terms only,
# the product's body without its rescore (its first phase), one plain neural_sparse clause of the English terms (the
# engine alone), or a BM25 match on the query's text.
PRODUCT, ENGLISH, FIRST_PHASE, ENGINE, BM25 = "product", "english", "first phase", "engine", "bm25"
EXACT, EXACT_ENGLISH = "exact rank_features", "exact rank_features, English only"
TWO_PHASE_DEFAULT = "milco-os two-phase 16 terms, window 1000 (default)"
SEISMIC_PRODUCT, SEISMIC_ENGINE = "SEISMIC, milco-os", "SEISMIC, engine alone"


@dataclass(frozen=True)
class Method:
    """One way to answer the queries: on which index, with which request and options."""

    name: str
    index: str
    options: SearchOptions = SearchOptions()
    shape: str = PRODUCT
    query_prune: str | None = None
    pipeline: str | None = None
    reference: str = EXACT  # whose top-10 its recall is measured against


@dataclass
class Timings:
    took_ms: list[float] = field(default_factory=list)
    wall_ms: list[float] = field(default_factory=list)
    rankings: list[list[str]] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def documents(model: StandInModel, count: int, start: int = 0) -> Iterator[dict]:
    for number in range(start, start + count):
        yield {"id": f"d{number}", "n": number, "text": model.document_text(number)}


def ingest(handle: IndexHandle, encoder: StandInEncoder, count: int, prune: str,
           on_progress: Callable[[int], None] = lambda n: None, start: int = 0) -> IngestSummary:
    """The product's ingest path, the stand-in in the encoder's place: documents ``start`` to ``start + count``."""
    options = IngestOptions(batch_size=BATCH, prune=prune, model_name=encoder.name)
    ingestor = Ingestor(handle, encoder, options, DeadLetters(None), on_progress=on_progress)
    summary = ingestor.run(DictSource(documents(encoder.model, count, start)))
    if summary.written != count:
        raise RuntimeError(f"{handle.name}: {summary.written} of {count} documents written: {summary.as_dict()}")
    return summary


def plain_bulk(client, handle: IndexHandle, encoder: StandInEncoder, count: int, prune: str) -> float:
    """The baseline: the same documents and fields through ``parallel_bulk``, no pipeline; seconds taken."""
    vocabulary, keys = encoder.vocabulary, handle.field.keys

    def actions() -> Iterator[dict]:
        for document in documents(encoder.model, count):
            vector = encoder.encode_documents([document["text"]], prune=prune)[0]
            yield {"_index": handle.name, "_id": document.pop("id"),
                   "_source": {**document, **keys.document_fields(vector, vocabulary)}}

    started = time.perf_counter()
    for ok, item in helpers.parallel_bulk(client, actions(), thread_count=2, chunk_size=BATCH):
        if not ok:
            raise RuntimeError(f"plain bulk refused a document: {item}")
    return time.perf_counter() - started


def settle(client, indices: list[str]) -> None:
    """Wait until the retention leases of ``indices`` retain nothing written, then flush: only then do merges drop
    the full ``_recovery_source`` each document keeps while its operation may still be replayed (without this,
    leaving the vectors out of ``_source`` saves nothing measurable)."""
    for index in indices:
        wait_until(lambda: leases_caught_up(client, index), timeout_s=600, what=f"retention leases of {index}")
    client.indices.flush(index=",".join(indices))


def leases_caught_up(client, index: str) -> bool:
    """True when every retention lease of every shard copy of ``index`` retains nothing already written."""
    shards = client.indices.stats(index=index, level="shards")["indices"][index]["shards"]
    return all(lease["retaining_seq_no"] > copy["seq_no"]["max_seq_no"]
               for copies in shards.values() for copy in copies for lease in copy["retention_leases"]["leases"])


def store_bytes(client, index: str) -> int:
    """The bytes of ``index``'s primaries force-merged to one segment (``settle`` it first)."""
    if len(client.cat.segments(index=index, format="json")) == 1:
        # A second segment, so that the force-merge merges (it leaves a lone segment as it is): written, deleted.
        client.index(index=index, id="merge-probe", body={"text": "probe"}, refresh=True, params={"pipeline": "_none"})
        client.delete(index=index, id="merge-probe", refresh=True)
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=7200)
    client.indices.refresh(index=index)
    # The live segments: the store's size still counts merged-away files until Lucene gets round to deleting them.
    return sum(int(segment["size"]) for segment in client.cat.segments(index=index, format="json", bytes="b"))


def wait_until(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout_s:.0f} s")
        time.sleep(1)


def plain_index(client, name: str) -> IndexHandle:
    """An index with the product's mapping and no ingest pipeline (the baseline's)."""
    handle, _ = ensure_index(client, name, replicas=0)
    client.indices.delete(index=name)
    client.indices.create(index=name, body=index_body(handle.field, passages=False, shards=1, replicas=0,
                                                      default_pipeline=False))
    return handle


SEISMIC_THREADS = "plugins.neural_search.sparse.algo_param.index_thread_qty"
# neural-search caches SEISMIC's postings and forward indices in the JVM heap, within this circuit breaker (10 % of the
# heap unless raised): an index that does not fit is read around the cache, several-fold slower.
SPARSE_CACHE_LIMIT = "plugins.neural_search.circuit_breaker.limit"
SPARSE_CACHE_SHARE = "60%"
BASELINE = "plain _bulk, no pipeline (baseline)"
BASELINE_INDEX = "scale-bulk"
INGEST_PATHS = (BASELINE, "plain _bulk through milco-stamp (other writers)",
                "milco-os Ingestor (its writes skip milco-stamp)")


def measure_ingest(client, encoder: StandInEncoder, count: int, prune: str) -> dict:
    """Docs/s on ``count`` docs, each path into a new index: plain ``_bulk`` without a pipeline and through the
    ``milco-stamp`` default pipeline, and the product (which checks and stamps itself, so skips it). The baseline's
    index is kept for ``add_store_rate`` once it has settled."""
    rows = {}
    warm_up = ensure_index(client, "scale-warm-up", replicas=0)[0]  # the node's JIT, before any path is timed
    plain_bulk(client, warm_up, encoder, min(count, 5000), prune)
    client.indices.delete(index=warm_up.name)
    for path, name in zip(INGEST_PATHS, (BASELINE_INDEX, "scale-bulk-stamp", "scale-product")):
        handle = plain_index(client, name) if path == BASELINE else ensure_index(client, name, replicas=0)[0]
        if path.startswith("milco-os"):
            summary = ingest(handle, encoder, count, prune)
            rows[path] = {"s": summary.elapsed_s, "encode_s": summary.encode_s, "bulk_s": summary.bulk_s}
        else:
            rows[path] = {"s": plain_bulk(client, handle, encoder, count, prune)}
        rows[path]["docs_per_s"] = count / rows[path]["s"]
        if path != BASELINE:
            client.indices.delete(index=name)
        print(f"ingest {path}: {rows[path]['docs_per_s']:.0f} docs/s", flush=True)
    return {"docs": count, "rows": rows}


def add_store_rate(client, measured: dict) -> dict:
    """``measured`` with the baseline index's force-merged size, and each path's MB/s of it (``settle`` first)."""
    mb = store_bytes(client, BASELINE_INDEX) / 1e6
    client.indices.delete(index=BASELINE_INDEX)
    for row in measured["rows"].values():
        row["mb_per_s"] = mb / row["s"]
    return {**measured, "store_mb": mb}


def write_size_indices(client, encoder: StandInEncoder, count: int) -> dict[tuple[str, bool], str]:
    """One index of ``count`` documents per pruning level, with the vectors kept in ``_source`` and without."""
    names = {}
    for level in LEVELS.values():
        for in_source in (True, False):
            name = names[level.name, in_source] = f"scale-size-{level.name.lower()}-{'kept' if in_source else 'out'}"
            handle, _ = ensure_index(client, name, replicas=0, vectors_in_source=in_source)
            ingest(handle, encoder, count, level.prune)
    return names


def measure_sizes(client, names: dict[tuple[str, bool], str], count: int) -> list[dict]:
    """Bytes per document of each pruning level, force-merged (``settle`` first); the indices are deleted."""
    rows = []
    for level in LEVELS.values():
        row = {"level": level.name, "en_terms": level.en_terms, "m_terms": level.m_terms}
        for key, in_source in (("bytes_per_doc", True), ("bytes_per_doc_no_source", False)):
            row[key] = store_bytes(client, names[level.name, in_source]) / count
            client.indices.delete(index=names[level.name, in_source])
        rows.append(row)
        print(f"size {json.dumps(row)}", flush=True)
    return rows


@dataclass
class Growing:
    """A main index grown collection size by collection size: what it holds and its figures at each size."""

    handle: IndexHandle
    docs: int = 0
    ingest_s: float = 0.0
    at: dict[int, dict] = field(default_factory=dict)

    def grow(self, client, encoder: StandInEncoder, size: int) -> None:
        """Documents up to ``size`` written (the next ones after those it holds), under the field's loading settings
        (a SEISMIC index's keep every segment below its threshold until the force-merge)."""
        with bulk_loading(self.handle):
            summary = ingest(self.handle, encoder, size - self.docs, LEVELS[MAIN_LEVEL].prune, start=self.docs)
        self.ingest_s += summary.elapsed_s
        self.docs = size

    def merge(self, client) -> dict:
        """Force-merged to one segment (SEISMIC clusters its postings then; ``settle`` first): its figures."""
        started = time.perf_counter()
        size = store_bytes(client, self.handle.name)
        self.at[self.docs] = {"docs": self.docs, "docs_per_s": self.docs / self.ingest_s,
                              "bytes_per_doc": size / self.docs, "force_merge_s": time.perf_counter() - started}
        print(f"{self.handle.name}: {json.dumps(self.at[self.docs])}", flush=True)
        return self.at[self.docs]

    def step_estimate_s(self, size: int) -> float:
        """Seconds to grow to ``size`` and merge, from its last size: ingest at its rate so far, the merge in
        proportion to the documents (SEISMIC's clustering grew a little slower than that from 100,000 to 300,000)."""
        last = self.at[self.docs]
        return (size - self.docs) * self.ingest_s / self.docs + last["force_merge_s"] * size / self.docs


def main_indices(client, encoder: StandInEncoder, sizes: list[int]) -> dict[str, Growing]:
    """The empty ``rank_features`` and SEISMIC indices at the main level, SEISMIC with the product's defaults and the
    quantisation ceilings measured on a sample of the largest collection."""
    sample = [encoder.model.document_text(n) for n in range(0, sizes[-1], max(1, sizes[-1] // 256))]
    seismic = measured_ceilings(encoder, sample, SeismicIndex(), LEVELS[MAIN_LEVEL].prune)
    return {name: Growing(ensure_index(client, name, replicas=0, vector_type=vector_type, parameters=parameters)[0])
            for name, vector_type, parameters in ((RF_INDEX, "rank_features", None),
                                                  (SEISMIC_INDEX, "seismic", seismic))}


def seismic_stop(seismic: Growing, rf: Growing, size: int, sizes: list[int], elapsed_s: float,
                 budget_s: float) -> dict | None:
    """Why SEISMIC stops before ``size`` (None: it goes on): when growing it there, with the rank_features index still
    to grow to the largest size, would take the run past its budget."""
    needed = seismic.step_estimate_s(size) + (sizes[-1] - rf.docs) * rf.ingest_s / rf.docs
    if elapsed_s + needed <= budget_s:
        return None
    return {"docs": size, "estimated_s": seismic.step_estimate_s(size), "last_docs": seismic.docs,
            "last_force_merge_s": seismic.at[seismic.docs]["force_merge_s"], "budget_s": budget_s,
            "elapsed_s": elapsed_s}


def cluster_on_every_core(client) -> int:
    """Let SEISMIC cluster postings on as many threads as the node has processors (neural-search uses one unless
    told otherwise); the number set."""
    nodes = client.nodes.info(metric="os")["nodes"].values()
    processors = min(node["os"]["allocated_processors"] for node in nodes)
    client.cluster.put_settings(body={"persistent": {SEISMIC_THREADS: processors}})
    return processors


def sparse_cache_bytes(client) -> int:
    """The bytes neural-search's circuit breaker counts on the node: SEISMIC's cached postings and forward index."""
    nodes = client.nodes.stats(metric="breaker")["nodes"].values()
    return sum(int(node["breakers"]["neural_search"]["estimated_size_in_bytes"]) for node in nodes)


def warm_alone(client, index: str, others: list[str]) -> int:
    """``index``'s postings and forward index loaded into neural-search's cache, every other SEISMIC index's cleared
    (so no index is measured reading around a full cache); the bytes it takes."""
    for name in others:
        client.transport.perform_request("POST", f"/_plugins/_neural/clear_cache/{name}")
    before = sparse_cache_bytes(client)
    client.transport.perform_request("POST", f"/_plugins/_neural/warmup/{index}", params={"request_timeout": 7200})
    return sparse_cache_bytes(client) - before


def english(terms: list[QueryTerm]) -> list[QueryTerm]:
    return [term for term in terms if term.field == EN_FIELD]


def clause(terms: list[QueryTerm], parameters: dict) -> dict:
    """One ``neural_sparse`` clause of the English ``terms`` with ``parameters`` (SEISMIC's method_parameters)."""
    return {"neural_sparse": {EN_FIELD: {"query_tokens": {term.key: term.weight for term in english(terms)},
                                         "method_parameters": parameters}}}


def engine_alone(terms: list[QueryTerm], k: int, top_n: int, heap_factor: float) -> dict:
    """SEISMIC as neural-search documents it: one clause of the English terms, no rescore."""
    return {"size": 10, "_source": False, "query": clause(terms, {"k": k, "top_n": top_n, "heap_factor": heap_factor})}


def request_bodies(method: Method, handle: IndexHandle, encoder: StandInEncoder, texts: list[str]) -> list[dict]:
    if method.shape == BM25:
        return [{"size": 10, "query": {"match": {"text": text}}, "_source": False} for text in texts]
    vectors = encoder.encode_queries(texts, prune=method.query_prune)
    terms = [dsl.query_terms(vector, encoder.vocabulary, keys=handle.field.keys) for vector in vectors]
    if method.shape == ENGINE:
        search = SeismicSearch()
        return [engine_alone(t, search.k, search.top_n, search.heap_factor) for t in terms]
    if method.shape == ENGLISH:
        terms = [english(t) for t in terms]
    bodies = [build_body(text, t, method.options, handle.field) for text, t in zip(texts, terms)]
    if method.shape == FIRST_PHASE:
        return [{key: value for key, value in body.items() if key != "rescore"} for body in bodies]
    return bodies


def run_queries(client, method: Method, bodies: list[dict], threads: int) -> tuple[Timings, float]:
    """Every body once over ``threads`` client threads: per query took, wall and ranking; and the QPS."""
    extra = {"params": {"search_pipeline": method.pipeline}} if method.pipeline else {}
    timings = Timings()

    def one(body: dict) -> tuple[float, float, list[str]]:
        started = time.perf_counter()
        response = client.search(index=method.index, body=body, **extra)
        return response["took"], (time.perf_counter() - started) * 1000, [hit["_id"] for hit in response["hits"]["hits"]]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for took, wall, ranking in pool.map(one, bodies):
            timings.took_ms.append(took)
            timings.wall_ms.append(wall)
            timings.rankings.append(ranking)
    return timings, len(bodies) / (time.perf_counter() - started)


def profile_summary(client, method: Method, body: dict, top: int = 3) -> dict:
    """Where the slowest query's time goes (``"profile": true``): the query and rescore time, and the query types
    (with their field) that spent the most time themselves, their children's time left out."""
    extra = {"params": {"search_pipeline": method.pipeline}} if method.pipeline else {}
    shard = client.search(index=method.index, body={**body, "profile": True}, **extra)["profile"]["shards"][0]
    own_ms: dict[str, float] = {}

    def walk(node: dict) -> None:
        children = node.get("children") or []
        field = re.search(r"field=([\w.]+)|^\+?\(?([\w.]+):", node["description"])
        kind = f"{node['type']} on {next(g for g in field.groups() if g)}" if field else node["type"]
        spent = node["time_in_nanos"] - sum(child["time_in_nanos"] for child in children)
        own_ms[kind] = own_ms.get(kind, 0.0) + max(spent, 0) / 1e6
        for child in children:
            walk(child)

    searches = shard["searches"]
    for search in searches:
        for query in search["query"]:
            walk(query)
    query_ms = sum(q["time_in_nanos"] for search in searches for q in search["query"]) / 1e6
    rescore_ms = sum(r.get("time_in_nanos", 0) for search in searches for r in search.get("rescore", [])) / 1e6
    costliest = sorted(own_ms.items(), key=lambda item: -item[1])[:top]
    return {"query_ms": round(query_ms, 1), "rescore_ms": round(rescore_ms, 1),
            "costliest_own_ms": {kind: round(ms, 1) for kind, ms in costliest}}


def methods(seismic: bool) -> list[Method]:
    """Every method (those on the SEISMIC index when ``seismic``); the first is the baseline."""
    exact = SearchOptions(source=False, two_phase=False)
    chosen = [
        Method("BM25 (baseline)", RF_INDEX, shape=BM25),
        Method(EXACT, RF_INDEX, exact),
        Method(EXACT_ENGLISH, RF_INDEX, exact, shape=ENGLISH, reference=EXACT_ENGLISH),
        Method("query pruning e=topk:12,m=topk:4", RF_INDEX, exact, query_prune="e=topk:12,m=topk:4"),
        Method("milco-os two-phase 16 terms, window 100", RF_INDEX,
               SearchOptions(source=False, two_phase=True, first_phase_terms=16, window=100)),
        Method(TWO_PHASE_DEFAULT, RF_INDEX, SearchOptions(source=False, two_phase=True)),
        Method("neural-search two-phase processor", RF_INDEX, SearchOptions(source=False, query_style=NEURAL_SPARSE),
               pipeline=TWO_PHASE_PIPELINE),
    ]
    if seismic:
        search = SeismicSearch()
        setting = f"k {search.k}, top_n {search.top_n}, heap_factor {search.heap_factor:g}"
        chosen += [Method(f"{SEISMIC_PRODUCT} ({setting})", SEISMIC_INDEX, SearchOptions(source=False)),
                   Method(f"{SEISMIC_PRODUCT}, first phase only", SEISMIC_INDEX, SearchOptions(source=False),
                          shape=FIRST_PHASE),
                   Method(f"{SEISMIC_ENGINE} ({setting})", SEISMIC_INDEX, shape=ENGINE, reference=EXACT_ENGLISH)]
    return chosen


def measure_queries(client, handles: dict[str, IndexHandle], encoder: StandInEncoder, texts: list[str],
                    targets: list[str], chosen: list[Method]) -> list[dict]:
    client.transport.perform_request("PUT", f"/_search/pipeline/{TWO_PHASE_PIPELINE}", body=search_pipeline_body())
    rows, rankings = [], {}
    for method in chosen:
        bodies = request_bodies(method, handles[method.index], encoder, texts)
        run_queries(client, method, bodies, 4)  # a whole pass first: caches, connections, the JIT of its code path
        single, qps_1 = run_queries(client, method, bodies, 1)
        _, qps_4 = run_queries(client, method, bodies, 4)
        rankings[method.name] = single.rankings
        slowest = bodies[max(range(len(bodies)), key=single.took_ms.__getitem__)]
        row = {"method": method.name, "reference": method.reference, "qps_1": qps_1, "qps_4": qps_4,
               **{f"took_p{p}": percentile(single.took_ms, p / 100) for p in (50, 95, 99)},
               **{f"wall_p{p}": percentile(single.wall_ms, p / 100) for p in (50, 95, 99)},
               "target_found_at_10": statistics.mean(t in r for r, t in zip(single.rankings, targets)),
               "slowest_profile": profile_summary(client, method, slowest)}
        rows.append(row)
        print(f"{method.name}: took p50/p95/p99 {row['took_p50']:.0f}/{row['took_p95']:.0f}/{row['took_p99']:.0f} ms, "
              f"QPS {qps_1:.1f} / {qps_4:.1f}", flush=True)
    for row in rows:
        pairs = zip(rankings[row["method"]], rankings[row["reference"]])
        row["recall_at_10"] = statistics.mean(len(set(got) & set(exact)) / max(1, len(exact)) for got, exact in pairs)
    return rows


def exponent(small: tuple[int, float], large: tuple[int, float]) -> float:
    """b of p50 ~ N^b between two (documents, p50 ms) points; ``took`` counts whole milliseconds, so a p50 of 0
    counts as half of one."""
    (n_small, t_small), (n_large, t_large) = small, large
    return math.log(max(t_large, 0.5) / max(t_small, 0.5)) / math.log(n_large / n_small)


def scaling(collections: list[dict]) -> list[dict]:
    """Per method: its took p50 / p95 and recall@10 at each size it ran at, and the exponent b of its p50 between the
    smallest and the largest of them."""
    by_method: dict[str, dict] = {}
    for collection in collections:
        for row in collection["queries"]:
            entry = by_method.setdefault(row["method"], {"method": row["method"], "at": {}})
            entry["at"][collection["docs"]] = {key: row[key] for key in ("took_p50", "took_p95", "recall_at_10")}
    for entry in by_method.values():
        points = sorted(entry["at"].items())
        entry["b"] = exponent((points[0][0], points[0][1]["took_p50"]), (points[-1][0], points[-1][1]["took_p50"])) \
            if len(points) > 1 else None
    return list(by_method.values())


def query_profile(encoder: StandInEncoder, texts: list[str], head: int = 16) -> dict:
    """The stand-in queries' shape: terms per view, and the share of their weight in the ``head`` heaviest terms
    (what two-phase retrieval relies on; the closer to 1, the easier for it)."""
    vectors = encoder.encode_queries(texts)
    shares = [float(np.sort(np.concatenate([v.en_weights, v.m_weights]))[::-1][:head].sum()
                    / np.concatenate([v.en_weights, v.m_weights]).sum()) for v in vectors]
    return {"en_terms": statistics.mean(len(v.en_ids) for v in vectors),
            "m_terms": statistics.mean(len(v.m_ids) for v in vectors),
            f"weight_share_top_{head}": statistics.mean(shares)}


def profile_note(profile: dict) -> str:
    costliest = ", ".join(f"{kind} {ms:.0f}" for kind, ms in profile["costliest_own_ms"].items())
    rescore = f", rescore {profile['rescore_ms']:.0f}" if profile["rescore_ms"] else ""
    return f"query {profile['query_ms']:.0f} ms ({costliest}){rescore}"


def method_table(rows: list[dict]) -> str:
    bm25 = rows[0]
    header = ["method", "recall@10 vs its reference", "target found@10", "took p50 / p95 / p99 ms",
              "wall p50 / p95 / p99 ms", "QPS 1 thread", "QPS 4 threads", "p95 vs BM25", "slowest query, profiled"]
    return markdown_table(header, [
        [r["method"], f"{r['recall_at_10']:.3f}" + ("" if r["reference"] == EXACT else " (English)"),
         f"{r['target_found_at_10']:.3f}", f"{r['took_p50']:.0f} / {r['took_p95']:.0f} / {r['took_p99']:.0f}",
         f"{r['wall_p50']:.1f} / {r['wall_p95']:.1f} / {r['wall_p99']:.1f}", f"{r['qps_1']:.1f}", f"{r['qps_4']:.1f}",
         f"{r['took_p95'] / max(bm25['took_p95'], 1):.1f}x", profile_note(r["slowest_profile"])] for r in rows])


def scaling_table(entries: list[dict], sizes: list[int]) -> str:
    def cell(entry: dict, size: int, key: str, form: str) -> str:
        return format(entry["at"][size][key], form) if size in entry["at"] else "-"
    header = (["method"] + [f"p50 ms, {size:,}" for size in sizes] + [f"p95 ms, {size:,}" for size in sizes]
              + [f"recall@10, {size:,}" for size in sizes] + ["b of p50"])
    return markdown_table(header, [
        [e["method"]] + [cell(e, n, "took_p50", ".0f") for n in sizes] + [cell(e, n, "took_p95", ".0f") for n in sizes]
        + [cell(e, n, "recall_at_10", ".3f") for n in sizes] + ["-" if e["b"] is None else f"{e['b']:.2f}"]
        for e in entries])


def verdict(collections: list[dict]) -> str:
    """The largest collection SEISMIC ran on: the product's SEISMIC query against BM25, the default two-phase,
    exact search and the engine alone."""
    measured = [c for c in collections if any(r["method"].startswith(SEISMIC_PRODUCT) for r in c["queries"])]
    if not measured:
        return ""
    rows = {row["method"]: row for row in measured[-1]["queries"]}
    product = next(row for name, row in rows.items() if name.startswith(SEISMIC_PRODUCT) and "first phase" not in name)
    engine = next(row for name, row in rows.items() if name.startswith(SEISMIC_ENGINE))
    bm25, two_phase, exact = rows["BM25 (baseline)"], rows[TWO_PHASE_DEFAULT], rows[EXACT]
    return (f"At {measured[-1]['docs']:,} documents (the largest SEISMIC ran on) the product's SEISMIC query takes "
            f"p95 {product['took_p95']:.0f} ms: {product['took_p95'] / max(bm25['took_p95'], 1):.2f}x BM25's and "
            f"{product['took_p95'] / max(two_phase['took_p95'], 1):.2f}x the default two-phase's, at recall@10 "
            f"{product['recall_at_10']:.3f} and target found@10 {product['target_found_at_10']:.3f} (exact search's "
            f"{exact['target_found_at_10']:.3f}); the engine alone takes p95 {engine['took_p95']:.0f} ms at recall@10 "
            f"{engine['recall_at_10']:.3f} of the English top 10, the product "
            f"{product['took_p95'] / max(engine['took_p95'], 1):.2f}x its time.\n")


def stop_note(stopped: dict | None) -> str:
    if not stopped:
        return ""
    return (f"SEISMIC stopped before {stopped['docs']:,} documents: growing its index there and clustering it "
            f"would take about {stopped['estimated_s'] / 60:.0f} minutes (its force-merge took "
            f"{stopped['last_force_merge_s']:.0f} s at {stopped['last_docs']:,}), past the run's budget of "
            f"{stopped['budget_s'] / 60:.0f} minutes with {stopped['elapsed_s'] / 60:.0f} spent; `--budget-minutes` "
            "gives it more.\n\n")


def tables(report: dict) -> str:
    ingest_rows = report["ingest"]["rows"]
    base = ingest_rows[BASELINE]["docs_per_s"]
    text = markdown_table(["ingest path", "docs/s", "MB/s", "vs plain _bulk"],
                          [[name, f"{row['docs_per_s']:.0f}", f"{row['mb_per_s']:.2f}", f"{row['docs_per_s'] / base:.2f}x"]
                           for name, row in ingest_rows.items()])
    text += (f"\n\nFirst {report['ingest']['docs']} documents at {MAIN_LEVEL}, each path into a new index; MB/s of the "
             f"force-merged index ({report['ingest']['store_mb']:.0f} MB).\n\n")
    text += markdown_table(["pruning level", "English + LexEcho terms/doc", "bytes/doc, vectors in _source",
                            "bytes/doc, vectors out of _source", "saved"],
                           [[r["level"], f"{r['en_terms']} + {r['m_terms']}", f"{r['bytes_per_doc']:.0f}",
                             f"{r['bytes_per_doc_no_source']:.0f}",
                             f"{1 - r['bytes_per_doc_no_source'] / r['bytes_per_doc']:.0%}"] for r in report["sizes"]])
    text += (f"\n\n{report['size_docs']} documents per level, force-merged to one segment. The paper's SEISMIC "
             "indices of 32M MIRACL-en passages: " + ", ".join(f"{p['level']} {p['bytes_per_doc']:.0f} bytes/doc"
                                                             for p in PAPER_SIZES) + ".\n\n")
    sizes = [c["docs"] for c in report["collections"]]
    text += "How each method's latency grows with the collection (server took; b: p50 ~ N^b):\n\n"
    text += scaling_table(report["scaling"], sizes) + "\n\n" + verdict(report["collections"]) + "\n"
    text += stop_note(report.get("seismic_stopped"))
    shape = report["query_vectors"]
    text += (f"{report['queries_count']} queries (stand-in: {shape['en_terms']:.0f} English + "
             f"{shape['m_terms']:.1f} LexEcho terms, {shape['weight_share_top_16']:.0%} of their weight in the 16 "
             f"heaviest), each about one of the first {sizes[0]:,} documents (its target), the same at every size, "
             f"on documents at {MAIN_LEVEL} ({LEVELS[MAIN_LEVEL].en_terms} + {LEVELS[MAIN_LEVEL].m_terms} terms). "
             f"The collection grows by the next documents, each index force-merged to one segment at each size; one "
             f"local node with neural-search {report['neural_search']} (heap {report['heap']}, SEISMIC clustering "
             f"on {report['seismic_threads']} threads, its cache limited to {SPARSE_CACHE_SHARE} of the heap; "
             f"{report['machine']}). The SEISMIC index has the product's defaults ({report['seismic_method']}). "
             f"Recall is against the exact two-view top 10 ({EXACT}), or the exact English-only one where marked; "
             "the first-phase-only row is the product's SEISMIC body without its rescore, which splits its time. "
             "The slowest query of each method is run again with `profile: true` (which slows it several-fold); in "
             "brackets, the query types that spent the most of that time themselves, in ms.\n\n")
    text += "The vectors' shape (means of unpruned vectors; `realism.py`):\n\n" + realism_table(report["realism"])
    for collection in report["collections"]:
        indices = "; ".join(f"{name} {row['docs_per_s']:.0f} docs/s, {row['bytes_per_doc']:.0f} bytes/doc, "
                            f"force-merge {row['force_merge_s']:.0f} s" for name, row in collection["indices"].items())
        cache = (f"; SEISMIC's cache {collection['seismic_cache_bytes'] / collection['docs']:.0f} bytes/doc of heap"
                 if "seismic_cache_bytes" in collection else "")
        text += (f"\n\n### {collection['docs']:,} documents\n\n" + method_table(collection["queries"])
                 + f"\n\nIndices: {indices}{cache}.")
    text += (f"\n\nMeasured on {report['date']} by `{report['command']}`; the whole run took "
             f"{report['elapsed_s'] / 60:.0f} minutes.\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,300000,1000000",
                        help="comma-separated collection sizes, ascending: the collection grows to each in turn")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-docs", type=int, default=50_000)
    parser.add_argument("--size-docs", type=int, default=10_000)
    parser.add_argument("--budget-minutes", type=float, default=60,
                        help="SEISMIC grows to the next size only if the run, as estimated, still ends within this")
    parser.add_argument("--model", type=Path, default=None,
                        help="a MILCO checkpoint whose vectors' shape on the sample corpus is shown beside the stand-in's")
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--url", default=None, help="existing cluster with neural-search (default: a local node)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = sorted(int(size) for size in args.sizes.split(",") if size)
    model = StandInModel()
    encoder = StandInEncoder(model)
    texts = [model.query_text(n, sizes[0]) for n in range(args.queries)]
    targets = [f"d{model.query_target(n, sizes[0])}" for n in range(args.queries)]
    report = {"queries_count": args.queries, "heap": args.heap, "size_docs": args.size_docs, "machine": machine(),
              "paper_sizes": PAPER_SIZES, "date": datetime.date.today().isoformat(),
              "command": shlex.join(["bench/scale.py", *sys.argv[1:]]), "realism": realism(encoder, sizes[0], args.model)}
    with node(args.url, args.heap) as url:
        client = make_client(url, timeout=7200)
        report["neural_search"] = neural_search_version(client)
        report["seismic_threads"] = cluster_on_every_core(client)
        client.cluster.put_settings(body={"persistent": {SPARSE_CACHE_LIMIT: SPARSE_CACHE_SHARE}})
        measured = measure_ingest(client, encoder, min(sizes[0], args.baseline_docs), LEVELS[MAIN_LEVEL].prune)
        size_docs = min(sizes[0], args.size_docs)
        size_indices = write_size_indices(client, encoder, size_docs)
        settle(client, [BASELINE_INDEX, *size_indices.values()])  # their retention leases catch up together
        report["ingest"] = add_store_rate(client, measured)
        report["sizes"] = measure_sizes(client, size_indices, size_docs)
        growing = main_indices(client, encoder, sizes)
        report["seismic_method"] = json.dumps(growing[SEISMIC_INDEX].handle.field.index.method()["parameters"])
        report["collections"] = []
        for size in sizes:
            if SEISMIC_INDEX in growing and size != sizes[0]:
                report["seismic_stopped"] = seismic_stop(growing[SEISMIC_INDEX], growing[RF_INDEX], size, sizes,
                                                         time.perf_counter() - started, args.budget_minutes * 60)
                if report["seismic_stopped"]:
                    client.indices.delete(index=SEISMIC_INDEX)  # its cache and heap left to the others
                    del growing[SEISMIC_INDEX]
            for index in growing.values():
                index.grow(client, encoder, size)
            settle(client, list(growing))
            collection = {"docs": size, "indices": {name: index.merge(client) for name, index in growing.items()}}
            if SEISMIC_INDEX in growing:
                collection["seismic_cache_bytes"] = warm_alone(client, SEISMIC_INDEX, [SEISMIC_INDEX])
            handles = {name: index.handle for name, index in growing.items()}
            collection["queries"] = measure_queries(client, handles, encoder, texts, targets,
                                                    methods(SEISMIC_INDEX in growing))
            report["collections"].append(collection)
        report["scaling"] = scaling(report["collections"])
        report["query_vectors"] = query_profile(encoder, texts)
    report["elapsed_s"] = time.perf_counter() - started
    text = tables(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))


def neural_search_version(client) -> str:
    """The version of the node's neural-search plugin."""
    plugins = client.cat.plugins(format="json")
    return next((p["version"] for p in plugins if p["component"] == "opensearch-neural-search"), "none")


@contextmanager
def node(url: str | None, heap: str) -> Iterator[str]:
    """``url`` when given, else a fresh local node with neural-search, removed afterwards."""
    if url:
        yield url
        return
    with temporary_node(version=ML_DEFAULT_VERSION, heap=heap, ml=True) as started:
        yield started.url


if __name__ == "__main__":
    main()
