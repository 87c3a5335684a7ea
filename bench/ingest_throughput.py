"""Ingest throughput end to end, and how well encoding overlaps the bulk writes.

The ingest bridge encodes batch N+1 while batch N is written. Measured in one run:
wall time, time spent encoding, time spent in bulk writes; the baseline is the
sequential cost (encode + bulk) of the same run, and the overlap target is
wall < 1.1 x max(encode, bulk).

    python bench/ingest_throughput.py [--docs 2000] [--batch-size 64] [--url URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import local_node, machine, markdown_table, synthetic_corpus

from milco_os.cluster import make_client
from milco_os.index.setup import ensure_index
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.sources import DictSource
from milco_os.index.handle import open_index
from milco_os.model import MilcoEncoder
from milco_os.paths import cache_dir
from milco_os.encoding.pruning import PruneSpec
from milco_os.model.tiny import make_tiny_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--prune", default="topk:64")
    parser.add_argument("--url", default=None, help="existing cluster (default: start a local node)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    encoder = MilcoEncoder.from_pretrained(make_tiny_checkpoint(cache_dir() / "bench" / "tiny-ingest", seed=11),
                                           device="cpu")
    documents = synthetic_corpus(args.docs)
    with local_node(args.url) as url:
        client = make_client(url)
        ensure_index(client, "bench-ingest", replicas=0)
        options = IngestOptions(batch_size=args.batch_size, prune=PruneSpec.parse(args.prune))
        summary = Ingestor(open_index(client, "bench-ingest"), encoder, options, DeadLetters(None)).run(DictSource(documents))
        client.indices.delete(index="bench-ingest")
    sequential = summary.encode_s + summary.bulk_s
    bound = max(summary.encode_s, summary.bulk_s)
    table = markdown_table(
        ["docs", "docs/s", "wall s", "encode s", "bulk s", "sequential s (baseline)", "speed-up vs sequential",
         "wall / max(encode, bulk)"],
        [[str(summary.written), f"{summary.written / summary.elapsed_s:.0f}", f"{summary.elapsed_s:.2f}",
          f"{summary.encode_s:.2f}", f"{summary.bulk_s:.2f}", f"{sequential:.2f}",
          f"{sequential / summary.elapsed_s:.2f}x", f"{summary.elapsed_s / bound:.2f}"]],
    )
    table += (f"\n\nTiny model, batch {args.batch_size}, documents pruned {args.prune}, "
              f"one local OpenSearch node on the same machine ({machine()}).\n")
    print(table)
    if args.out:
        args.out.write_text(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), "summary": summary.as_dict()}, indent=1))


if __name__ == "__main__":
    main()
