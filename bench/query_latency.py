"""Query latency (p50/p95) of full, query-pruned, two-phase and BM25 search on one index,
and index size per document-pruning spec.

Latency is the client-side round trip of the search request (queries are encoded
beforehand), over the same queries for every mode; BM25 on the same index is the
baseline. Index sizes come from ``_stats`` after a force-merge to one segment.

    python bench/query_latency.py [--docs 3000] [--queries 200] [--url URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from common import local_node, machine, markdown_table, synthetic_corpus, synthetic_queries

from milco_os import query as dsl
from milco_os.cluster import make_client
from milco_os.index_setup import ensure_index
from milco_os.ingest import DeadLetters, IngestOptions, Ingestor, records_from_dicts
from milco_os.model import MilcoEncoder
from milco_os.paths import cache_dir
from milco_os.pruning import PruneSpec
from milco_os.search import SearchOptions, build_body
from milco_os.testing import make_tiny_checkpoint

INDEX_SPECS = ("none", "topk:128", "topk:64", "topk:32", "mass:0.5")
SEARCH_INDEX_SPEC = "topk:64"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def build_index(client, encoder: MilcoEncoder, documents: list[dict], spec: str) -> tuple[str, int]:
    index = "bench-" + spec.replace(":", "-").replace(".", "_")
    ensure_index(client, index, replicas=0)
    options = IngestOptions(index=index, prune=PruneSpec.parse(spec), batch_size=128)
    Ingestor(client, encoder, options, DeadLetters(None)).run(records_from_dicts(documents))
    client.indices.forcemerge(index=index, max_num_segments=1)
    client.indices.refresh(index=index)
    size = client.indices.stats(index=index, metric="store")["indices"][index]["primaries"]["store"]["size_in_bytes"]
    return index, size


def latencies(client, index: str, bodies: list[dict]) -> list[float]:
    for body in bodies[:10]:
        client.search(index=index, body=body)
    timings = []
    for body in bodies:
        started = time.perf_counter()
        client.search(index=index, body=body)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--url", default=None, help="existing cluster (default: start a local node)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    encoder = MilcoEncoder.from_pretrained(make_tiny_checkpoint(cache_dir() / "bench" / "tiny-query", seed=13),
                                           device="cpu")
    documents = synthetic_corpus(args.docs, seed=7)
    texts = synthetic_queries(args.queries, seed=8)
    with local_node(args.url) as url:
        client = make_client(url)
        sizes = {spec: build_index(client, encoder, documents, spec) for spec in INDEX_SPECS}
        index = sizes[SEARCH_INDEX_SPEC][0]
        vectors = {prune: encoder.encode(texts, max_length=64, prune=prune) for prune in ("none", "topk:32")}

        def bodies(prune: str, options: SearchOptions) -> list[dict]:
            return [build_body(text, dsl.query_terms(vector, encoder.vocabulary), options)
                    for text, vector in zip(texts, vectors[prune])]

        modes = {
            "BM25 (baseline)": [{"size": 10, "query": {"match": {"text": text}}} for text in texts],
            "MILCO full": bodies("none", SearchOptions()),
            "MILCO query-pruned topk:32": bodies("topk:32", SearchOptions()),
            "MILCO two-phase (16 terms, window 100)": bodies("none", SearchOptions(two_phase=True)),
        }
        timings = {mode: latencies(client, index, requests) for mode, requests in modes.items()}
        for name, _ in sizes.values():
            client.indices.delete(index=name)
    base = statistics.median(timings["BM25 (baseline)"])
    latency_rows = [[mode, f"{statistics.median(t):.2f}", f"{percentile(t, 0.95):.2f}",
                     f"{statistics.median(t) / base:.2f}x"] for mode, t in timings.items()]
    full = sizes["none"][1]
    size_rows = [[spec, f"{size / args.docs:.0f}", f"{size / full:.2f}"] for spec, (_, size) in sizes.items()]
    report = (markdown_table(["mode", "p50 ms", "p95 ms", "p50 vs BM25"], latency_rows)
              + f"\n\n{args.queries} queries on {args.docs} documents pruned {SEARCH_INDEX_SPEC}; tiny random model "
              f"(query vectors of ~{statistics.mean(len(v) for v in vectors['none']):.0f} terms), one local node "
              f"({machine()}).\n\n"
              + markdown_table(["document pruning", "bytes/doc", "size vs unpruned"], size_rows) + "\n")
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
