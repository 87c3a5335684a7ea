"""Encoding at the device's limit: the released MILCO architecture, milco-os against the authors' way and a floor.

The model has the released shape (24 layers, hidden 1024, intermediate 4096, vocabularies
30,522 and 250,002) with random weights, its English bias calibrated so that documents
get a few hundred English terms as a trained model's do. It is written in the released
format and loaded through the real checkpoint loader. Documents have 32 to 510 tokens
(mean about 200), queries 8 to 32. In one run it measures:

- the device's matmul ceiling (bf16 on a GPU, fp32 with ``--small``), the yardstick;
- milco-os (``MilcoEncoder`` with default settings): docs/s, real tokens/s, achieved TFLOP/s
  (2 x matmul parameters x real tokens + attention) and its share of the ceiling;
- the authors' way, as the baseline: fixed batches of 32 in input order padded to a
  multiple of 32, bf16 autocast over fp32 weights, the full ``[B, L, 30522]`` logits and
  dense 280,524-wide rows copied to the host;
- the backbone alone on milco-os's batches, as the floor no encoder can beat;
- peak device memory, single-query latency p50/p95, host waits per batch (GPU), and
  bf16-vs-fp32 agreement: relative L2 of the English view, query-document scores.

    python bench/gpu_encode.py [--docs 16384] [--queries 256] [--out FILE.md] [--json-out FILE.json]
    python bench/gpu_encode.py --small        # the same code on a CPU, a small model, in under a minute
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dense_encode, machine, markdown_table  # noqa: E402

from milco_os.model import MilcoEncoder  # noqa: E402
from milco_os.model.encoder import plan_batches  # noqa: E402
from milco_os.model.tiny import MULTILINGUAL_SAMPLE, make_tiny_checkpoint  # noqa: E402

RELEASED = dict(layers=24, hidden=1024, intermediate=4096, en_hidden=768, en_vocab_size=30522,
                m_vocab_size=250002, max_positions=514)
SMALL = dict(layers=2, hidden=128, intermediate=512, en_hidden=64, en_vocab_size=4000, m_vocab_size=6000,
             max_positions=514)
AUTHORS_BATCH = 32
AUTHORS_PAD_MULTIPLE = 32


@dataclass(frozen=True)
class Setup:
    device: torch.device
    architecture: dict
    docs: int
    queries: int
    agreement_docs: int
    latency_queries: int
    en_terms: int


def setup_from(args: argparse.Namespace) -> Setup:
    if args.small:
        return Setup(torch.device("cpu"), SMALL, args.docs or 48, args.queries or 16, 24, 10, 150)
    if not torch.cuda.is_available():
        sys.exit("no GPU here: run with --small for the CPU version of this benchmark")
    return Setup(torch.device("cuda"), RELEASED, args.docs or 16384, args.queries or 256, 512, 200, 400)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], object]) -> float:
    synchronize(device)
    started = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - started


def matmul_ceiling(device: torch.device) -> tuple[float, str]:
    """TFLOP/s of large square matmuls in the serving dtype (bf16 on a GPU, fp32 on a CPU)."""
    dtype, size, repeats = (torch.bfloat16, 8192, 20) if device.type == "cuda" else (torch.float32, 1024, 5)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    seconds = timed(device, lambda: [a @ b for _ in range(repeats)])
    return 2 * size**3 * repeats / seconds / 1e12, str(dtype).removeprefix("torch.")


def texts_of_lengths(tokenizer, lengths: list[int], seed: int) -> list[str]:
    """Texts of whole multilingual words whose token counts (with <s> and </s>) are about ``lengths``."""
    rng = random.Random(seed)
    words = sorted({word for line in MULTILINGUAL_SAMPLE for word in line.split()})
    cost = dict(zip(words, (len(ids) for ids in tokenizer(words, add_special_tokens=False)["input_ids"])))
    texts = []
    for length in lengths:
        chosen, tokens = [], 2
        while tokens < length:
            word = rng.choice(words)
            chosen.append(word)
            tokens += cost[word]
        texts.append(" ".join(chosen))
    return texts


def document_lengths(count: int, seed: int) -> list[int]:
    """Log-normal lengths clipped to 32..510 tokens, median 170 (mean about 200)."""
    rng = random.Random(seed)
    return [min(510, max(32, round(rng.lognormvariate(np.log(170), 0.6)))) for _ in range(count)]


def matmul_parameters(network: nn.Module) -> tuple[int, int]:
    """Weights of the Linear layers: the whole network's, and the backbone's alone."""
    every = sum(module.weight.numel() for module in network.modules() if isinstance(module, nn.Linear))
    backbone = sum(module.weight.numel() for module in network.m_model.modules() if isinstance(module, nn.Linear))
    return every, backbone


def model_flops(encoder: MilcoEncoder, lengths: list[int], backbone_only: bool = False) -> float:
    """2 x matmul parameters x real tokens, plus attention (QK^T and AV) over each text's real length."""
    config = encoder.network.m_model.config
    every, backbone = matmul_parameters(encoder.network)
    attention = sum(4 * length**2 * config.hidden_size * config.num_hidden_layers for length in lengths)
    return 2 * (backbone if backbone_only else every) * sum(lengths) + attention


def authors_way(encoder: MilcoEncoder, texts: list[str]) -> None:
    """Fixed batches in input order padded to a multiple of 32, bf16 autocast, full logits, dense rows to the host."""
    dense_encode(encoder, texts, AUTHORS_BATCH, pad_to_multiple_of=AUTHORS_PAD_MULTIPLE, autocast=torch.bfloat16)


@torch.inference_mode()
def backbone_floor(encoder: MilcoEncoder, token_ids: list[list[int]]) -> None:
    """The backbone alone, on the batches milco-os forms from the same texts."""
    limits = encoder.limits
    for batch in plan_batches([len(ids) for ids in token_ids], limits.batch_size, limits.token_budget):
        input_ids, attention_mask = encoder._device_batch([token_ids[i] for i in batch])
        encoder.network.backbone_states(input_ids, attention_mask)


def measured_run(device: torch.device, work: Callable[[], object]) -> tuple[float, float]:
    """Seconds ``work`` takes, and the device memory it adds at its peak in MB (NaN on a CPU)."""
    if device.type != "cuda":
        return timed(device, work), float("nan")
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    seconds = timed(device, work)
    return seconds, (torch.cuda.max_memory_allocated(device) - before) / 2**20


def host_waits_per_batch(encoder: MilcoEncoder, texts: list[str]) -> float:
    """Synchronising CUDA calls torch flags while milco-os encodes one batch (NaN on a CPU)."""
    if encoder.device.type != "cuda":
        return float("nan")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            encoder.encode(texts[:encoder.limits.batch_size], batch_size=encoder.limits.batch_size)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return float(sum("synchroniz" in str(warning.message) for warning in caught))


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(np.array(values), share))


def query_latency_ms(encoder: MilcoEncoder, queries: list[str]) -> tuple[float, float]:
    durations = []
    for query in queries:
        started = time.perf_counter()
        encoder.encode([query])
        durations.append((time.perf_counter() - started) * 1000)
    return percentile(durations, 50), percentile(durations, 95)


def dense_english(vector, size: int) -> np.ndarray:
    row = np.zeros(size, np.float64)
    row[vector.en_ids] = vector.en_weights
    return row


def agreement(fast: MilcoEncoder, exact: MilcoEncoder, docs: list[str], queries: list[str]) -> dict:
    """How far the serving precision strays from fp32: English-view relative L2, scores, rankings."""
    size = fast.network.en_vocab_size
    fast_docs, exact_docs = fast.encode(docs), exact.encode(docs)
    errors = [np.linalg.norm(dense_english(a, size) - dense_english(b, size)) / max(1e-12, np.linalg.norm(
        dense_english(b, size))) for a, b in zip(fast_docs, exact_docs)]
    fast_scores = np.array([[q.dot(d) for d in fast_docs] for q in fast.encode(queries)])
    exact_scores = np.array([[q.dot(d) for d in exact_docs] for q in exact.encode(queries)])
    overlap = [len(set(np.argsort(-a)[:10]) & set(np.argsort(-b)[:10])) / 10
               for a, b in zip(fast_scores, exact_scores)]
    correlation = [float(np.corrcoef(a, b)[0, 1]) for a, b in zip(fast_scores, exact_scores)]
    return {"en_relative_l2_mean": float(np.mean(errors)), "en_relative_l2_max": float(np.max(errors)),
            "score_relative_error_max": float(np.abs(fast_scores - exact_scores).max() / np.abs(exact_scores).max()),
            "score_pearson_mean": float(np.mean(correlation)), "top10_overlap_mean": float(np.mean(overlap))}


def run(setup: Setup, seed: int) -> dict:
    device = setup.device
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = make_tiny_checkpoint(Path(folder) / "milco", seed=seed, en_terms_per_text=setup.en_terms,
                                          **setup.architecture)
        encoder = MilcoEncoder.from_pretrained(checkpoint, device=device)
        exact = MilcoEncoder.from_pretrained(checkpoint, device=device, precision="fp32")
        bf16 = encoder if encoder.precision == "bf16" else MilcoEncoder.from_pretrained(
            checkpoint, device=device, precision="bf16")
    built_s = time.perf_counter() - started
    doc_lengths = document_lengths(setup.docs, seed)
    docs = texts_of_lengths(encoder.tokenizer, doc_lengths, seed)
    queries = texts_of_lengths(encoder.tokenizer, [random.Random(seed + n).randint(8, 32)
                                                   for n in range(setup.queries)], seed + 1)
    token_ids = encoder.tokenizer(docs, truncation=True, max_length=encoder.max_positions)["input_ids"]
    lengths = [len(ids) for ids in token_ids]
    ceiling, ceiling_dtype = matmul_ceiling(device)

    encoder.encode(docs[:256])
    authors_way(exact, docs[:64])
    backbone_floor(encoder, token_ids[:256])
    vectors: list = []
    measured = {}
    for name, work, flops in (
        ("milco-os", lambda: vectors.extend(encoder.encode(docs)), model_flops(encoder, lengths)),
        ("authors' way", lambda: authors_way(exact, docs), model_flops(encoder, lengths)),
        ("backbone alone (floor)", lambda: backbone_floor(encoder, token_ids), model_flops(encoder, lengths, True)),
    ):
        seconds, peak_mb = measured_run(device, work)
        measured[name] = {"seconds": seconds, "docs_per_s": len(docs) / seconds, "tokens_per_s": sum(lengths) / seconds,
                          "tflops": flops / seconds / 1e12, "share_of_ceiling": flops / seconds / 1e12 / ceiling,
                          "peak_mb": peak_mb}
    p50, p95 = query_latency_ms(encoder, queries[:setup.latency_queries])
    result = {
        "date": datetime.date.today().isoformat(), "command": " ".join(["python bench/gpu_encode.py", *sys.argv[1:]]),
        "machine": machine(), "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "architecture": setup.architecture, "precision": encoder.precision, "limits": encoder.limits.__dict__,
        "docs": len(docs), "mean_doc_tokens": statistics.mean(lengths), "queries": len(queries),
        "ceiling_tflops": ceiling, "ceiling_dtype": ceiling_dtype, "model_build_s": built_s,
        "mean_terms": {"en": statistics.mean(len(v.en_ids) for v in vectors),
                       "m": statistics.mean(len(v.m_ids) for v in vectors)},
        "methods": measured, "query_latency_ms": {"p50": p50, "p95": p95},
        "host_waits_per_batch": host_waits_per_batch(encoder, docs),
        "agreement": agreement(bf16, exact, docs[:setup.agreement_docs], queries[:64]),
    }
    return result


def table(result: dict) -> str:
    floor = result["methods"]["backbone alone (floor)"]["seconds"]
    rows = [[name, f"{m['docs_per_s']:.0f}", f"{m['tokens_per_s']:.0f}", f"{m['tflops']:.2f}",
             f"{100 * m['share_of_ceiling']:.0f} %", f"{m['seconds'] / floor:.2f}x", f"{m['peak_mb']:.0f}"]
            for name, m in result["methods"].items()]
    ours, authors = result["methods"]["milco-os"], result["methods"]["authors' way"]
    agree = result["agreement"]
    return "\n".join([
        markdown_table(["method", "docs/s", "tokens/s", "TFLOP/s", "of ceiling", "time vs floor", "peak MB"], rows),
        "",
        f"{result['docs']} documents (mean {result['mean_doc_tokens']:.0f} tokens; mean terms kept: "
        f"{result['mean_terms']['en']:.0f} English, {result['mean_terms']['m']:.0f} LexEcho), "
        f"{result['device']}, milco-os precision {result['precision']}, limits {result['limits']}.",
        f"Matmul ceiling ({result['ceiling_dtype']}): {result['ceiling_tflops']:.1f} TFLOP/s. "
        f"milco-os vs authors' way: {ours['docs_per_s'] / authors['docs_per_s']:.2f}x.",
        f"Single query: p50 {result['query_latency_ms']['p50']:.1f} ms, p95 {result['query_latency_ms']['p95']:.1f} ms. "
        f"Host waits per batch: {result['host_waits_per_batch']:.0f}.",
        f"bf16 vs fp32: English view relative L2 mean {agree['en_relative_l2_mean']:.4f} "
        f"(max {agree['en_relative_l2_max']:.4f}); query-document scores: max relative error "
        f"{agree['score_relative_error_max']:.4f}, mean Pearson {agree['score_pearson_mean']:.4f}, "
        f"top-10 overlap {agree['top10_overlap_mean']:.2f}.",
        f"Machine: {result['machine']}. Model built and loaded in {result['model_build_s']:.0f} s. "
        f"Measured on {result['date']} with `{result['command']}`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a small model on the CPU (the same code, under a minute)")
    parser.add_argument("--docs", type=int, default=0, help="documents (default 16384; 48 with --small)")
    parser.add_argument("--queries", type=int, default=0, help="queries (default 256; 16 with --small)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the measurements as JSON here")
    args = parser.parse_args()
    result = run(setup_from(args), args.seed)
    for path, text in ((args.out, table(result) + "\n"), (args.json_out, json.dumps(result, indent=1))):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(table(result))


if __name__ == "__main__":
    main()
