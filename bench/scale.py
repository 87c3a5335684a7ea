"""A million documents: ingest rate, index size and query latency of every MILCO search method next to BM25.

Vectors come from the MILCO-like stand-in of ``standin.py`` (terms per document at the
paper's pruning levels, Zipfian document frequencies, the model's weight ranges), written
through the product's own ingest path (``Ingestor``) with the stand-in in the encoder's
place, onto one local node (ml-commons and neural-search, 4 GB heap unless ``--heap``).

- **Ingest**: docs/s and MB/s of the product against a plain ``parallel_bulk`` of the same
  documents (same stand-in, same fields, no pipeline) on the first ``--baseline-docs``.
- **Index size**: bytes per document after a force-merge for every pruning level, on
  ``--size-docs`` documents each, next to the paper's index sizes.
- **Queries**: p50/p95/p99 of the server's ``took`` and of the client's wall time, QPS at
  1 and 4 client threads, and recall@10 against the exact top-10, for each method:
  exact ``rank_features``, query pruning, milco-os two-phase, neural-search's two-phase
  processor, SEISMIC and BM25 (on the same collection: a document's text is its pieces).

    python bench/scale.py [--docs 1000000] [--queries 200] [--heap 4g] [--url URL] [--out FILE] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
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
from standin import LEVELS, StandInEncoder, StandInModel

from milco_os.cluster import make_client
from milco_os.cluster_ml.bodies import search_pipeline_body
from milco_os.index.handle import IndexHandle
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.setup import ensure_index, index_body
from milco_os.index.seismic_parameters import SeismicIndex
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


@dataclass(frozen=True)
class Method:
    """One way to answer the queries: on which index, with which options (``bm25``: a ``match`` on the text)."""

    name: str
    index: str
    options: SearchOptions = SearchOptions()
    query_prune: str | None = None
    bm25: bool = False
    pipeline: str | None = None
    reference: str = "exact rank_features"  # whose top-10 its recall is measured against


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
           on_progress: Callable[[int], None] = lambda n: None) -> IngestSummary:
    """The product's ingest path, the stand-in in the encoder's place."""
    options = IngestOptions(batch_size=BATCH, prune=prune, model_name=encoder.name)
    ingestor = Ingestor(handle, encoder, options, DeadLetters(None), on_progress=on_progress)
    summary = ingestor.run(DictSource(documents(encoder.model, count)))
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
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
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


def write_main_indices(client, encoder: StandInEncoder, count: int, seismic_count: int) -> dict[str, dict]:
    """The rank_features index of ``count`` documents and the SEISMIC index of the first ``seismic_count``, at the
    main level, with their ingest rates."""
    prune, written = LEVELS[MAIN_LEVEL].prune, {}
    sample = [encoder.model.document_text(n) for n in range(0, count, max(1, count // 256))]
    seismic = measured_ceilings(encoder, sample, SeismicIndex(), prune)
    for name, vector_type, count, parameters in (("scale-rf", "rank_features", count, None),
                                                 ("scale-seismic", "seismic", seismic_count, seismic)):
        if not count:
            continue
        handle, _ = ensure_index(client, name, replicas=0, vector_type=vector_type, parameters=parameters)
        marks: list[float] = []
        started = time.perf_counter()
        summary = ingest(handle, encoder, count, prune, on_progress=lambda n: marks.append(time.perf_counter()))
        written[name] = {"handle": handle, "docs": count, "docs_per_s": count / summary.elapsed_s,
                         "ingest_s": summary.elapsed_s, "first_batches_docs_per_s": first_rate(marks, started)}
    return written


def merge_main_indices(client, written: dict[str, dict]) -> dict[str, dict]:
    """The main indices force-merged (SEISMIC clusters its postings then; ``settle`` first), with their sizes."""
    built = {}
    for name, row in written.items():
        merge_started = time.perf_counter()
        size = store_bytes(client, name)
        built[name] = {**row, "bytes_per_doc": size / row["docs"], "force_merge_s": time.perf_counter() - merge_started}
        print(f"{name}: {json.dumps({k: v for k, v in built[name].items() if k != 'handle'})}", flush=True)
    return built


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
    client.transport.perform_request("POST", f"/_plugins/_neural/warmup/{index}", params={"request_timeout": 3600})
    return sparse_cache_bytes(client) - before


def first_rate(marks: list[float], started: float, batches: int = 200) -> float:
    """Docs/s over the first ``batches`` batches (the baseline's share of the run)."""
    upto = marks[: batches][-1] if marks else started
    return min(batches, len(marks)) * BATCH / max(upto - started, 1e-9)


def request_bodies(method: Method, handles: dict[str, IndexHandle], encoder: StandInEncoder,
                   texts: list[str]) -> list[dict]:
    if method.bm25:
        return [{"size": 10, "query": {"match": {"text": text}}, "_source": False} for text in texts]
    handle = handles[method.index]
    vectors = encoder.encode_queries(texts, prune=method.query_prune)
    return [build_body(text, dsl.query_terms(vector, encoder.vocabulary, keys=handle.field.keys), method.options,
                       handle.field) for text, vector in zip(texts, vectors)]


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


def methods(docs: int, seismic_docs: int) -> list[Method]:
    """Every method; SEISMIC against the exact top-10 of the documents its index holds."""
    seismic_reference = "exact rank_features"
    subset: list[Method] = []
    if 0 < seismic_docs < docs:
        seismic_reference = f"exact rank_features, first {seismic_docs} documents"
        subset = [Method(seismic_reference, "scale-rf",
                         SearchOptions(source=False, two_phase=False,
                                       filters=({"range": {"n": {"lt": seismic_docs}}},)),
                         reference=seismic_reference)]
    seismic = [Method(f"SEISMIC (k 100, top_n 16, heap_factor 2){', ' + str(seismic_docs) + ' documents' if subset else ''}",
                      "scale-seismic", SearchOptions(source=False), reference=seismic_reference)] if seismic_docs else []
    return [
        Method("BM25 (baseline)", "scale-rf", bm25=True),
        Method("exact rank_features", "scale-rf", SearchOptions(source=False, two_phase=False)),
        Method("query pruning e=topk:12,m=topk:4", "scale-rf", SearchOptions(source=False, two_phase=False),
               query_prune="e=topk:12,m=topk:4"),
        Method("milco-os two-phase 16 terms, window 100", "scale-rf",
               SearchOptions(source=False, two_phase=True, first_phase_terms=16, window=100)),
        Method("milco-os two-phase 16 terms, window 1000", "scale-rf",
               SearchOptions(source=False, two_phase=True, first_phase_terms=16, window=1000)),
        Method("neural-search two-phase processor", "scale-rf", SearchOptions(source=False, query_style=NEURAL_SPARSE),
               pipeline=TWO_PHASE_PIPELINE),
    ] + subset + seismic


def measure_queries(client, handles: dict[str, IndexHandle], encoder: StandInEncoder, texts: list[str],
                    chosen: list[Method]) -> list[dict]:
    client.transport.perform_request("PUT", f"/_search/pipeline/{TWO_PHASE_PIPELINE}", body=search_pipeline_body())
    rows, rankings = [], {}
    for method in chosen:
        bodies = request_bodies(method, handles, encoder, texts)
        run_queries(client, method, bodies, 4)  # a whole pass first: caches, connections, the JIT of its code path
        single, qps_1 = run_queries(client, method, bodies, 1)
        _, qps_4 = run_queries(client, method, bodies, 4)
        rankings[method.name] = single.rankings
        slowest = bodies[max(range(len(bodies)), key=single.took_ms.__getitem__)]
        row = {"method": method.name, "reference": method.reference, "qps_1": qps_1, "qps_4": qps_4,
               **{f"took_p{p}": percentile(single.took_ms, p / 100) for p in (50, 95, 99)},
               **{f"wall_p{p}": percentile(single.wall_ms, p / 100) for p in (50, 95, 99)},
               "slowest_profile": profile_summary(client, method, slowest)}
        rows.append(row)
        print(f"{method.name}: took p50/p95/p99 {row['took_p50']:.0f}/{row['took_p95']:.0f}/{row['took_p99']:.0f} ms, "
              f"QPS {qps_1:.1f} / {qps_4:.1f}", flush=True)
    for row in rows:
        pairs = zip(rankings[row["method"]], rankings[row["reference"]])
        row["recall_at_10"] = statistics.mean(len(set(got) & set(exact)) / max(1, len(exact)) for got, exact in pairs)
    return rows


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
    bm25 = report["queries"][0]
    header = ["method", "recall@10 vs exact", "took p50 / p95 / p99 ms", "wall p50 / p95 / p99 ms", "QPS 1 thread",
              "QPS 4 threads", "p95 vs BM25", "slowest query, profiled"]
    text += markdown_table(header, [
        [r["method"], f"{r['recall_at_10']:.3f}", f"{r['took_p50']:.0f} / {r['took_p95']:.0f} / {r['took_p99']:.0f}",
         f"{r['wall_p50']:.1f} / {r['wall_p95']:.1f} / {r['wall_p99']:.1f}", f"{r['qps_1']:.1f}", f"{r['qps_4']:.1f}",
         f"{r['took_p95'] / max(bm25['took_p95'], 1):.1f}x", profile_note(r["slowest_profile"])]
        for r in report["queries"]])
    main = report["main"]
    shape = report["query_vectors"]
    text += (f"\n\n{report['queries_count']} queries (stand-in: {shape['en_terms']:.0f} English + "
             f"{shape['m_terms']:.1f} LexEcho terms, {shape['weight_share_top_16']:.0%} of their weight in the 16 "
             f"heaviest) on {report['docs']} "
             f"documents at {MAIN_LEVEL} ({LEVELS[MAIN_LEVEL].en_terms} + {LEVELS[MAIN_LEVEL].m_terms} terms), one "
             f"force-merged segment per index, one local node (heap {report['heap']}; {machine()}). Indices: "
             + "; ".join(f"{name} {row['docs']} documents, {row['docs_per_s']:.0f} docs/s, {row['bytes_per_doc']:.0f} "
                         f"bytes/doc, force-merge "
                         f"{row['force_merge_s']:.0f} s" for name, row in main.items()) + ". The slowest query of "
             "each method is run again with `profile: true` (which slows it several-fold); in brackets, the query "
             "types that spent the most of that time themselves, in ms.\n")
    text += (f"\nMeasured on {report['date']} by `{report['command']}`; the whole run took "
             f"{report['elapsed_s'] / 60:.0f} minutes.\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-docs", type=int, default=50_000)
    parser.add_argument("--size-docs", type=int, default=20_000)
    parser.add_argument("--seismic-docs", type=int, default=100_000,
                        help="documents in the SEISMIC index, the first of --docs (0 leaves SEISMIC out): it clusters "
                             "its postings at force-merge, ~4 ms of a core per document")
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--url", default=None, help="existing cluster with neural-search (default: a local node)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    model = StandInModel()
    encoder = StandInEncoder(model)
    texts = [model.query_text(n, args.docs) for n in range(args.queries)]
    with node(args.url, args.heap) as url:
        client = make_client(url, timeout=600)
        report = {"docs": args.docs, "queries_count": args.queries, "heap": args.heap, "size_docs": args.size_docs,
                  "machine": machine(), "paper_sizes": PAPER_SIZES, "date": datetime.date.today().isoformat(),
                  "command": shlex.join(["bench/scale.py", *sys.argv[1:]])}
        measured = measure_ingest(client, encoder, min(args.docs, args.baseline_docs), LEVELS[MAIN_LEVEL].prune)
        size_docs = min(args.docs, args.size_docs)
        size_indices = write_size_indices(client, encoder, size_docs)
        seismic_docs = min(args.seismic_docs, args.docs)
        if seismic_docs:
            report["seismic_threads"] = cluster_on_every_core(client)
            client.cluster.put_settings(body={"persistent": {SPARSE_CACHE_LIMIT: "60%"}})
        written = write_main_indices(client, encoder, args.docs, seismic_docs)
        # Every index at once: their retention leases catch up together.
        settle(client, [BASELINE_INDEX, *size_indices.values(), *written])
        report["ingest"] = add_store_rate(client, measured)
        print(json.dumps(report["ingest"]), flush=True)
        report["sizes"] = measure_sizes(client, size_indices, size_docs)
        built = merge_main_indices(client, written)
        handles = {name: row.pop("handle") for name, row in built.items()}
        if seismic_docs:
            report["seismic_cache_bytes"] = warm_alone(client, "scale-seismic", [])
        report["main"], report["seismic_docs"] = built, seismic_docs
        report["queries"] = measure_queries(client, handles, encoder, texts, methods(args.docs, seismic_docs))
        report["query_vectors"] = query_profile(encoder, texts)
    report["elapsed_s"] = time.perf_counter() - started
    text = tables(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))


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
