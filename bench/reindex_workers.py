"""Reindex throughput over worker processes: 1, 2 and 4 workers, against one node and a 3-node cluster.

Each row reindexes the same source index (the sample corpus's passages, tiny model) with
``milco-os reindex --workers N`` (as many slices as workers) in its own process, as an
operator runs it. The baseline is one worker on the same cluster in the same run. Several
workers run twice: with torch's threads in each (the default: every core) and with
``--worker-threads`` giving each its share of them (torch's count divided by the workers).

    python bench/reindex_workers.py [--docs 4000] [--workers 1,2,4] [--out FILE] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from common import machine, markdown_table, synthetic_corpus
import torch
from opensearchpy import OpenSearch, helpers

from milco_os.model.tiny import make_tiny_checkpoint
from milco_os.paths import cache_dir
from milco_os.services.temporary_node import temporary_cluster, temporary_node

SOURCE = "bench-reindex-source"


@contextmanager
def target(nodes: int) -> Iterator[str]:
    """The comma-separated URLs of a fresh local cluster of ``nodes`` nodes (512 MB heaps)."""
    if nodes == 1:
        with temporary_node(heap="512m") as node:
            yield node.url
    else:
        with temporary_cluster(nodes, heap="512m") as cluster:
            yield cluster.url


def fill_source(url: str, documents: list[dict], nodes: int) -> None:
    client = OpenSearch(hosts=url.split(","), timeout=120)
    client.indices.create(index=SOURCE, body={"settings": {"number_of_shards": nodes,
                                                           "number_of_replicas": 1 if nodes > 1 else 0}})
    helpers.bulk(client, ({"_index": SOURCE, "_id": d["id"], **d} for d in documents), refresh=True)
    client.close()


def reindex(url: str, model: Path, workers: int, threads: int | None, scratch: Path) -> dict:
    """One ``milco-os reindex`` run into a fresh index: its JSON summary and the command's wall time."""
    dest = f"bench-reindex-w{workers}"
    command = [sys.executable, "-m", "milco_os", "reindex", "--url", url, "--source", SOURCE, "--dest", dest,
               "--text-field", "text", "--model", str(model), "--prune", "topk:64", "--workers", str(workers),
               "--dead-letter", str(scratch / f"{dest}.jsonl"),
               *(["--worker-threads", str(threads)] if threads else [])]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"reindex with {workers} workers failed:\n{result.stderr[-2000:]}")
    summary = json.loads(next(line for line in reversed(result.stderr.splitlines()) if line.startswith("{")))
    OpenSearch(hosts=url.split(",")).indices.delete(index=dest)
    return {**summary, "wall_s": round(wall, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=4000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--nodes", default="1,3", help="cluster sizes to measure against")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    model = make_tiny_checkpoint(cache_dir() / "bench" / "tiny-reindex", seed=11)
    scratch = cache_dir() / "bench" / "reindex-workers"
    scratch.mkdir(parents=True, exist_ok=True)
    documents = synthetic_corpus(args.docs)
    worker_counts = [int(n) for n in args.workers.split(",")]
    every_thread = torch.get_num_threads()
    runs = [(1, None)] if 1 in worker_counts else []
    runs += [(n, threads) for n in worker_counts if n > 1 for threads in (None, max(1, every_thread // n))]
    rows, records = [], []
    for nodes in (int(n) for n in args.nodes.split(",")):
        with target(nodes) as url:
            fill_source(url, documents, nodes)
            baseline = None
            for workers, threads in runs:
                summary = reindex(url, model, workers, threads, scratch)
                rate = summary["read"] / summary["elapsed_s"]
                baseline = baseline or rate
                shown_threads = threads or every_thread
                records.append({"nodes": nodes, "workers": workers, "threads_per_worker": shown_threads, **summary})
                rows.append([f"{nodes} node{'s' if nodes > 1 else ''}", str(workers),
                             f"{shown_threads}{'' if threads else ' (default)'}", str(summary["read"]),
                             f"{summary['elapsed_s']:.1f}", f"{summary['wall_s']:.1f}", f"{rate:.0f}",
                             f"{rate / baseline:.2f}x"])
                print(rows[-1], flush=True)
    table = markdown_table(["cluster", "workers", "torch threads each", "docs", "job s", "command wall s",
                            "docs/s (job)", "speed-up vs 1 worker"], rows)
    table += (f"\n\nTiny model, in-process encoding in each worker, documents pruned topk:64, batches of 64, "
              f"as many slices as workers; source and destination with one primary per node (a replica on the "
              f"3-node cluster), 512 MB heaps; cluster and client share this machine ({machine()}). "
              f"Measured {datetime.date.today().isoformat()}; the run took {time.perf_counter() - started:.0f} s.\n")
    print(table)
    if args.out:
        args.out.write_text(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), "rows": records}, indent=1))


if __name__ == "__main__":
    main()
