"""Query latency (p50/p95), fidelity and index size for several document-pruning specs.

For each spec one index holds the same documents pruned that way. On each index the same
queries run as: MILCO full (exact dot product), query-pruned (topk:32), two-phase (the
default first-phase terms and window), and BM25 (`match` on the text) as the baseline. Latency is the
client-side round trip (queries are encoded beforehand). Fidelity is the overlap of the
full MILCO top-10 with the top-10 of exact in-memory scoring against the unpruned
document vectors. Index size comes from `_stats` after a force-merge to one segment.

    python bench/query_latency.py [--docs 3000] [--queries 200] [--url URL] [--out FILE] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import local_node, machine, markdown_table, synthetic_corpus, synthetic_queries

from milco_os.search import query_dsl as dsl
from milco_os.cluster import make_client
from milco_os.index.setup import ensure_index
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import DictSource
from milco_os.index.handle import IndexHandle, open_index
from milco_os.model import MilcoEncoder
from milco_os.paths import cache_dir
from milco_os.encoding.pruning import PruneSpec
from milco_os.search.searcher import SearchOptions, build_body
from milco_os.model.tiny import make_tiny_checkpoint

INDEX_SPECS = ("none", "mass:0.5", "topk:128", "topk:64", "topk:32", "topk:16")
MODES = ("BM25 (baseline)", "MILCO full", "MILCO query-pruned topk:32", "MILCO two-phase")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def build_index(client, encoder: MilcoEncoder, documents: list[dict], spec: str) -> tuple[IndexHandle, int]:
    index = "bench-" + spec.replace(":", "-").replace(".", "_")
    ensure_index(client, index, replicas=0)
    handle = open_index(client, index)
    options = IngestOptions(prune=PruneSpec.parse(spec), batch_size=128)
    Ingestor(handle, encoder, options, DeadLetters(None)).run(DictSource(documents))
    client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.refresh(index=index)
    size = client.indices.stats(index=index, metric="store")["indices"][index]["primaries"]["store"]["size_in_bytes"]
    return handle, size


def latencies(client, index: str, bodies: list[dict]) -> tuple[list[float], list[list[str]]]:
    for body in bodies[:10]:
        client.search(index=index, body=body)
    timings, rankings = [], []
    for body in bodies:
        started = time.perf_counter()
        response = client.search(index=index, body=body)
        timings.append((time.perf_counter() - started) * 1000)
        rankings.append([hit["_id"] for hit in response["hits"]["hits"]])
    return timings, rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", default=None, help="existing cluster (default: start a local node)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    encoder = MilcoEncoder.from_pretrained(make_tiny_checkpoint(cache_dir() / "bench" / "tiny-query", seed=13),
                                           device="cpu")
    documents = synthetic_corpus(args.docs, seed=7)
    texts = synthetic_queries(args.queries, seed=8)
    full_docs = encoder.encode([doc["text"] for doc in documents])
    queries = {prune: encoder.encode(texts, max_length=64, prune=prune) for prune in ("none", "topk:32")}
    exact_top10 = [[documents[i]["id"] for i in sorted(range(len(full_docs)), key=lambda i: -q.dot(full_docs[i]))[:10]]
                   for q in queries["none"]]

    def bodies(handle: IndexHandle, prune: str, options: SearchOptions) -> list[dict]:
        return [build_body(text, dsl.query_terms(vector, encoder.vocabulary, keys=handle.field.keys), options,
                           handle.field) for text, vector in zip(texts, queries[prune])]

    results = []
    with local_node(args.url) as url:
        client = make_client(url)
        for spec in INDEX_SPECS:
            handle, size = build_index(client, encoder, documents, spec)
            index = handle.name
            requests = {
                "BM25 (baseline)": [{"size": 10, "query": {"match": {"text": text}}} for text in texts],
                "MILCO full": bodies(handle, "none", SearchOptions(two_phase=False)),
                "MILCO query-pruned topk:32": bodies(handle, "topk:32", SearchOptions(two_phase=False)),
                "MILCO two-phase": bodies(handle, "none", SearchOptions(two_phase=True)),
            }
            row = {"spec": spec, "bytes_per_doc": size / args.docs}
            for mode in MODES:
                timings, rankings = latencies(client, index, requests[mode])
                row[mode] = {"p50": statistics.median(timings), "p95": percentile(timings, 0.95)}
                if mode == "MILCO full":
                    row["fidelity"] = statistics.mean(len(set(r) & set(e)) / 10 for r, e in zip(rankings, exact_top10))
            client.indices.delete(index=index)
            results.append(row)
            print(spec, json.dumps(row), flush=True)
    unpruned = results[0]["bytes_per_doc"]
    header = ["document pruning", "bytes/doc", "size vs unpruned", "top-10 overlap with exact"]
    header += [f"{mode} p50 / p95 ms" for mode in MODES] + ["MILCO full p50 vs BM25"]
    rows = [[r["spec"], f"{r['bytes_per_doc']:.0f}", f"{r['bytes_per_doc'] / unpruned:.2f}", f"{r['fidelity']:.3f}"]
            + [f"{r[m]['p50']:.1f} / {r[m]['p95']:.1f}" for m in MODES]
            + [f"{r['MILCO full']['p50'] / r['BM25 (baseline)']['p50']:.2f}x"] for r in results]
    query_terms = statistics.mean(len(v) for v in queries["none"])
    table = markdown_table(header, rows) + (
        f"\n\n{args.queries} queries on {args.docs} documents; tiny random model (query vectors of ~{query_terms:.0f} "
        f"terms); one local node on the same machine ({machine()}).\n")
    print(table)
    if args.out:
        args.out.write_text(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), "docs": args.docs, "queries": args.queries,
                                             "results": results}, indent=1))


if __name__ == "__main__":
    main()
