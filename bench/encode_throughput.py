"""Encode throughput and peak memory: MilcoEncoder against a naive baseline, in the same run.

The baseline is how MILCO is usually run: batches of a fixed size in input order,
padded to their longest text, the full [batch, seq, 30522] logits tensor, and the
dense 30,522 + m_vocab output copied off the device. MilcoEncoder sorts by length,
batches by token budget, pools logits in sequence chunks with a running max and
returns only (ids, weights). Both compute the unpruned vectors of the same texts.

Each measurement runs in its own process so peak memory (max RSS over the RSS before
encoding) belongs to that measurement alone.

    python bench/encode_throughput.py [--texts 96] [--repeats 3] [--batch-sizes 1,8,32] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dense_encode  # noqa: E402

from milco_os.paths import cache_dir  # noqa: E402
from milco_os.model.tiny import MULTILINGUAL_SAMPLE, make_tiny_checkpoint  # noqa: E402

MODELS = {
    "tiny (2L, h64, vocab 600/800)": {},
    "mid (6L, h384, full vocabularies)": dict(layers=6, hidden=384, intermediate=1536, en_hidden=768,
                                              en_vocab_size=30522, m_vocab_size=250002, max_positions=514),
}


def checkpoint_for(model: str) -> Path:
    directory = cache_dir() / "bench" / ("tiny" if model.startswith("tiny") else "mid")
    if not (directory / "config.json").is_file():
        make_tiny_checkpoint(directory, seed=11, **MODELS[model])
    return directory


def mixed_texts(count: int, seed: int = 5) -> list[str]:
    """Multilingual texts of 1 to 12 sentences: a realistic spread of lengths."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(MULTILINGUAL_SAMPLE) for _ in range(rng.randint(1, 12))) for _ in range(count)]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def measure(model: str, method: str, batch_size: int, count: int, repeats: int) -> dict:
    from milco_os.model import MilcoEncoder

    encoder = MilcoEncoder.from_pretrained(checkpoint_for(model), device="cpu")
    texts = mixed_texts(count)
    tokens = sum(len(ids) for ids in encoder.tokenizer(texts, truncation=True,
                                                       max_length=encoder.max_positions)["input_ids"])
    run = (lambda: encoder.encode(texts, batch_size=batch_size)) if method == "milco-os" else (
        lambda: dense_encode(encoder, texts, batch_size))
    encoder.encode(texts[:2])  # warm-up
    before = rss_bytes()
    elapsed = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        elapsed = min(elapsed, time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"docs_per_s": count / elapsed, "tokens_per_s": tokens / elapsed, "peak_mb": max(0, peak - before) / 2**20}


def run_in_child(model: str, method: str, batch_size: int, count: int, repeats: int) -> dict:
    command = [sys.executable, __file__, "--one", json.dumps([model, method, batch_size, count, repeats])]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per measurement; the best counts")
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the measurements as JSON here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*json.loads(args.one))))
        return
    rows = ["| model | batch | milco-os docs/s | baseline docs/s | speed-up | milco-os tokens/s "
            "| milco-os peak MB | baseline peak MB |", "|---|---|---|---|---|---|---|---|"]
    measurements = []
    for model in MODELS:
        checkpoint_for(model)
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            ours = run_in_child(model, "milco-os", batch_size, args.texts, args.repeats)
            base = run_in_child(model, "baseline", batch_size, args.texts, args.repeats)
            measurements.append({"model": model, "batch": batch_size, "milco_os": ours, "baseline": base})
            rows.append(f"| {model} | {batch_size} | {ours['docs_per_s']:.1f} | {base['docs_per_s']:.1f} | "
                        f"{ours['docs_per_s'] / base['docs_per_s']:.2f}x | {ours['tokens_per_s']:.0f} | "
                        f"{ours['peak_mb']:.0f} | {base['peak_mb']:.0f} |")
            print(rows[-1], flush=True)
    machine = f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}"
    table = "\n".join(rows) + (f"\n\n{args.texts} mixed-length multilingual texts, best of {args.repeats} passes, "
                                f"fp32 on CPU ({machine}).\n")
    print("\n" + table)
    if args.out:
        args.out.write_text(table)
    if args.json_out:
        args.json_out.write_text(json.dumps({"machine": machine, "texts": args.texts, "results": measurements}, indent=1))


if __name__ == "__main__":
    main()
