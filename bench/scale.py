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
import json
import statistics
import time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from common import machine, markdown_table
from opensearchpy import helpers
from standin import LEVELS, StandInEncoder, StandInModel

from milco_os.cluster import make_client
from milco_os.cluster_ml.bodies import search_pipeline_body
from milco_os.index.handle import IndexHandle
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.setup import ensure_index, index_body
from milco_os.index.vector_fields import SeismicIndex, vector_field
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
# The paper's SEISMIC index sizes for 32M MIRACL-en passages (GB), at its average English terms per document.
PAPER_SIZES = {"P0": (570, 61.0), "P60": (228, 12.0)}


@dataclass(frozen=True)
class Method:
    """One way to answer the queries: on which index, with which options (``bm25``: a ``match`` on the text)."""

    name: str
    index: str
    options: SearchOptions = SearchOptions()
    query_prune: str | None = None
    bm25: bool = False
    pipeline: str | None = None


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
        yield {"id": f"d{number}", "text": model.document_text(number)}


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
            yield {"_index": handle.name, "_id": document["id"],
                   "_source": {"text": document["text"], **keys.document_fields(vector, vocabulary)}}

    started = time.perf_counter()
    for ok, item in helpers.parallel_bulk(client, actions(), thread_count=2, chunk_size=BATCH):
        if not ok:
            raise RuntimeError(f"plain bulk refused a document: {item}")
    return time.perf_counter() - started


def store_bytes(client, index: str) -> int:
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    client.indices.refresh(index=index)
    return client.indices.stats(index=index, metric="store")["indices"][index]["primaries"]["store"]["size_in_bytes"]


def plain_index(client, name: str) -> IndexHandle:
    """An index with the product's mapping and no ingest pipeline (the baseline's)."""
    handle, _ = ensure_index(client, name, replicas=0)
    client.indices.delete(index=name)
    client.indices.create(index=name, body=index_body(handle.field, passages=False, shards=1, replicas=0,
                                                      default_pipeline=False))
    return handle


def measure_ingest(client, encoder: StandInEncoder, count: int, prune: str) -> dict:
    """Docs/s of plain ``_bulk``, the product without and with its ``milco-stamp`` pipeline, on ``count`` docs."""
    rows = {}
    handle = plain_index(client, "scale-bulk")
    seconds = plain_bulk(client, handle, encoder, count, prune)
    rows["plain _bulk (baseline)"] = {"docs_per_s": count / seconds, "s": seconds}
    mb = store_bytes(client, "scale-bulk") / 1e6
    client.indices.delete(index="scale-bulk")
    handle = plain_index(client, "scale-nostamp")
    summary = ingest(handle, encoder, count, prune)
    rows["milco-os Ingestor, no pipeline"] = {"docs_per_s": count / summary.elapsed_s, "s": summary.elapsed_s,
                                              "encode_s": summary.encode_s, "bulk_s": summary.bulk_s}
    client.indices.delete(index="scale-nostamp")
    handle, _ = ensure_index(client, "scale-stamp", replicas=0)
    summary = ingest(handle, encoder, count, prune)
    rows["milco-os Ingestor, milco-stamp pipeline"] = {"docs_per_s": count / summary.elapsed_s,
                                                       "s": summary.elapsed_s, "encode_s": summary.encode_s,
                                                       "bulk_s": summary.bulk_s}
    client.indices.delete(index="scale-stamp")
    for row in rows.values():
        row["mb_per_s"] = mb / row["s"]
    return {"docs": count, "store_mb": mb, "rows": rows}


def measure_sizes(client, encoder: StandInEncoder, count: int) -> list[dict]:
    """Bytes per document of each pruning level, force-merged, vectors kept in ``_source``."""
    rows = []
    for level in LEVELS.values():
        name = f"scale-size-{level.name.lower()}"
        handle, _ = ensure_index(client, name, replicas=0)
        ingest(handle, encoder, count, level.prune)
        rows.append({"level": level.name, "en_terms": level.en_terms, "m_terms": level.m_terms,
                     "bytes_per_doc": store_bytes(client, name) / count})
        client.indices.delete(index=name)
        print(f"size {level.name}: {rows[-1]['bytes_per_doc']:.0f} bytes/doc", flush=True)
    return rows


def build_main_indices(client, encoder: StandInEncoder, count: int) -> dict:
    """The rank_features and the SEISMIC index of ``count`` documents at the main level, force-merged."""
    prune, built = LEVELS[MAIN_LEVEL].prune, {}
    sample = [encoder.model.document_text(n) for n in range(0, count, max(1, count // 256))]
    seismic = measured_ceilings(encoder, sample, SeismicIndex(), prune)
    for name, vector_type in (("scale-rf", "rank_features"), ("scale-seismic", "seismic")):
        handle, _ = ensure_index(client, name, replicas=0, vector_type=vector_type, seismic=seismic)
        marks: list[float] = []
        started = time.perf_counter()
        summary = ingest(handle, encoder, count, prune, on_progress=lambda n: marks.append(time.perf_counter()))
        merge_started = time.perf_counter()
        size = store_bytes(client, name)
        built[name] = {"handle": handle, "docs_per_s": count / summary.elapsed_s, "bytes_per_doc": size / count,
                       "force_merge_s": time.perf_counter() - merge_started, "ingest_s": summary.elapsed_s,
                       "first_batches_docs_per_s": first_rate(marks, started)}
        print(f"{name}: {json.dumps({k: v for k, v in built[name].items() if k != 'handle'})}", flush=True)
    return built


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


def methods() -> list[Method]:
    return [
        Method("BM25 (baseline)", "scale-rf", bm25=True),
        Method("exact rank_features", "scale-rf", SearchOptions(source=False)),
        Method("query pruning e=topk:12,m=topk:4", "scale-rf", SearchOptions(source=False),
               query_prune="e=topk:12,m=topk:4"),
        Method("milco-os two-phase 16 terms, window 100", "scale-rf",
               SearchOptions(source=False, two_phase=True, first_phase_terms=16, window=100)),
        Method("milco-os two-phase 16 terms, window 1000", "scale-rf",
               SearchOptions(source=False, two_phase=True, first_phase_terms=16, window=1000)),
        Method("neural-search two-phase processor", "scale-rf", SearchOptions(source=False, query_style=NEURAL_SPARSE),
               pipeline=TWO_PHASE_PIPELINE),
        Method("SEISMIC (k 100, top_n 16, heap_factor 2)", "scale-seismic", SearchOptions(source=False)),
    ]


def measure_queries(client, handles: dict[str, IndexHandle], encoder: StandInEncoder, texts: list[str]) -> list[dict]:
    client.transport.perform_request("PUT", f"/_search/pipeline/{TWO_PHASE_PIPELINE}", body=search_pipeline_body())
    rows, exact = [], None
    for method in methods():
        bodies = request_bodies(method, handles, encoder, texts)
        run_queries(client, method, bodies[:10], 1)  # warm caches and connections
        single, qps_1 = run_queries(client, method, bodies, 1)
        _, qps_4 = run_queries(client, method, bodies, 4)
        exact = single.rankings if method.name.startswith("exact") else exact
        row = {"method": method.name, "qps_1": qps_1, "qps_4": qps_4,
               **{f"took_p{p}": percentile(single.took_ms, p / 100) for p in (50, 95, 99)},
               **{f"wall_p{p}": percentile(single.wall_ms, p / 100) for p in (50, 95, 99)},
               "rankings": single.rankings}
        rows.append(row)
        print(f"{method.name}: took p50/p95/p99 {row['took_p50']:.0f}/{row['took_p95']:.0f}/{row['took_p99']:.0f} ms, "
              f"QPS {qps_1:.1f} / {qps_4:.1f}", flush=True)
    for row in rows:
        rankings = row.pop("rankings")
        row["recall_at_10"] = statistics.mean(len(set(r) & set(e)) / max(1, len(e)) for r, e in zip(rankings, exact))
    return rows


def tables(report: dict) -> str:
    ingest_rows = report["ingest"]["rows"]
    base = ingest_rows["plain _bulk (baseline)"]["docs_per_s"]
    text = markdown_table(["ingest path", "docs/s", "MB/s", "vs plain _bulk"],
                          [[name, f"{row['docs_per_s']:.0f}", f"{row['mb_per_s']:.2f}", f"{row['docs_per_s'] / base:.2f}x"]
                           for name, row in ingest_rows.items()])
    text += (f"\n\nFirst {report['ingest']['docs']} documents at {MAIN_LEVEL}, each path into a new index; MB/s of the "
             f"force-merged index ({report['ingest']['store_mb']:.0f} MB).\n\n")
    text += markdown_table(["pruning level", "English + LexEcho terms/doc", "bytes/doc"],
                           [[r["level"], f"{r['en_terms']} + {r['m_terms']}", f"{r['bytes_per_doc']:.0f}"]
                            for r in report["sizes"]])
    text += f"\n\n{report['size_docs']} documents per level, force-merged to one segment, vectors in `_source`.\n\n"
    bm25 = report["queries"][0]
    header = ["method", "recall@10 vs exact", "took p50 / p95 / p99 ms", "wall p50 / p95 / p99 ms", "QPS 1 thread",
              "QPS 4 threads", "p95 vs BM25"]
    text += markdown_table(header, [
        [r["method"], f"{r['recall_at_10']:.3f}", f"{r['took_p50']:.0f} / {r['took_p95']:.0f} / {r['took_p99']:.0f}",
         f"{r['wall_p50']:.1f} / {r['wall_p95']:.1f} / {r['wall_p99']:.1f}", f"{r['qps_1']:.1f}", f"{r['qps_4']:.1f}",
         f"{r['took_p95'] / max(bm25['took_p95'], 1):.1f}x"] for r in report["queries"]])
    main = report["main"]
    text += (f"\n\n{report['queries_count']} queries (stand-in: ~32 English + ~7 LexEcho terms) on {report['docs']} "
             f"documents at {MAIN_LEVEL} ({LEVELS[MAIN_LEVEL].en_terms} + {LEVELS[MAIN_LEVEL].m_terms} terms), one "
             f"force-merged segment per index, one local node (heap {report['heap']}; {machine()}). Indices: "
             + "; ".join(f"{name} {row['docs_per_s']:.0f} docs/s, {row['bytes_per_doc']:.0f} bytes/doc, force-merge "
                         f"{row['force_merge_s']:.0f} s" for name, row in main.items()) + ".\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--baseline-docs", type=int, default=100_000)
    parser.add_argument("--size-docs", type=int, default=20_000)
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--url", default=None, help="existing cluster with neural-search (default: a local node)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    model = StandInModel()
    encoder = StandInEncoder(model)
    texts = [model.query_text(n, args.docs) for n in range(args.queries)]
    with node(args.url, args.heap) as url:
        client = make_client(url, timeout=600)
        report = {"docs": args.docs, "queries_count": args.queries, "heap": args.heap, "size_docs": args.size_docs,
                  "machine": machine()}
        report["ingest"] = measure_ingest(client, encoder, min(args.docs, args.baseline_docs), LEVELS[MAIN_LEVEL].prune)
        print(json.dumps(report["ingest"]), flush=True)
        report["sizes"] = measure_sizes(client, encoder, min(args.docs, args.size_docs))
        built = build_main_indices(client, encoder, args.docs)
        handles = {name: row.pop("handle") for name, row in built.items()}
        report["main"] = built
        report["queries"] = measure_queries(client, handles, encoder, texts)
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
