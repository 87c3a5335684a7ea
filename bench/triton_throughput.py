"""Encoding through Triton vs in process: docs/s at 1/4/16 concurrent requests, and bytes per document.

One run starts a real tritonserver (CPU here) serving a random checkpoint of the mid-size
architecture (6 layers, hidden 384, full vocabularies), and encodes the same mixed-length
multilingual texts in process (the baseline) and through TritonEncoder over gRPC.
Bytes per document are the response tensors' payload (ids + weights + counts per view, each
request's rows padded to its longest), beside the dense equivalent of one 280,524-wide
float32 vector.

    python bench/triton_throughput.py [--texts 64] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import machine, markdown_table

from milco_os.model import MilcoEncoder
from milco_os.services.triton_server import TritonServer
from milco_os.encoding.triton_wire import vector_arrays
from milco_os.encoding.triton_client import TritonEncoder
from milco_os.serving.triton_repository import export_repository

sys.path.insert(0, str(Path(__file__).parent))
from encode_throughput import checkpoint_for, mixed_texts  # noqa: E402

MODEL = "mid (6L, h384, full vocabularies)"
DENSE_BYTES = (30522 + 250002) * 4
TEXTS_PER_REQUEST = 8


def timed(encode, texts: list[str]) -> float:
    encode(texts[:4])
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    checkpoint = checkpoint_for(MODEL)
    texts = mixed_texts(args.texts)
    local = MilcoEncoder.from_pretrained(checkpoint, device="cpu")
    rows, by_batch = [], []
    with tempfile.TemporaryDirectory() as repository:
        export_repository(checkpoint, Path(repository), device="cpu", max_batch_size=64, reference=True)
        with TritonServer(Path(repository), log_file=Path(repository) / "tritonserver.log") as server:
            for prune in ("none", "topk:64"):
                baseline = timed(lambda t: local.encode(t, batch_size=TEXTS_PER_REQUEST, prune=prune), texts)
                vectors = local.encode(texts, prune=prune)
                chunks = [vectors[i : i + TEXTS_PER_REQUEST] for i in range(0, len(vectors), TEXTS_PER_REQUEST)]
                payload = sum(sum(a.nbytes for a in vector_arrays(c).values()) for c in chunks) / len(vectors)
                terms = sum(len(v) for v in vectors) / len(vectors)
                for concurrency in (1, 4, 16):
                    remote = TritonEncoder(server.grpc_url, max_in_flight=concurrency,
                                           texts_per_request=TEXTS_PER_REQUEST)
                    rate = timed(lambda t: remote.encode(t, prune=prune), texts)
                    rows.append([prune, str(concurrency), f"{rate:.1f}", f"{baseline:.1f}", f"{rate / baseline:.2f}x",
                                 f"{terms:.0f}", f"{payload:.0f}", f"{DENSE_BYTES / payload:.0f}x"])
                    print(rows[-1], flush=True)
            for batch_size in (1, 8, 32):
                remote = TritonEncoder(server.grpc_url, max_in_flight=4, texts_per_request=batch_size)
                by_batch.append({"batch": batch_size, "docs_per_s": timed(lambda t: remote.encode(t), texts)})
                print(by_batch[-1], flush=True)
    table = markdown_table(["pruning", "concurrent requests", "Triton docs/s", "in-process docs/s", "ratio",
                            "terms/doc", "bytes/doc on the wire", "dense 280,524 x 4 B / that"], rows)
    table += (f"\n\n{args.texts} mixed-length multilingual texts, {TEXTS_PER_REQUEST} per request, model {MODEL} "
              f"(random weights); tritonserver and client on the same CPU machine ({machine()}).\n")
    print(table)
    if args.out:
        args.out.write_text(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine(), "by_batch": by_batch, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
