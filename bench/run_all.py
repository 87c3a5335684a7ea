"""Runs every benchmark, then writes bench/RESULTS.md and the PNG plots in bench/plots/.

Each script measures its figures side by side with a baseline in the same run; this
script only runs them, keeps their JSON in bench/results/, draws the plots and adds a
scale model extrapolated from the measured numbers.

    MILCO_OS_CACHE=.cache/milco-os .venv/bin/python bench/run_all.py [--render-only]

``--render-only`` redraws RESULTS.md and the plots from the kept results without measuring.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
PLOTS = BENCH / "plots"
# bench/seismic_sweep.py's kept runs on the same machine day, oldest first: a later run's curve or baseline
# replaces an earlier one's. (seismic_sweep_defaults ran on a day the machine was twice as slow: kept apart.)
SWEEPS = tuple(RESULTS / f"{name}.json" for name in ("seismic_sweep", "seismic_sweep_300k", "seismic_sweep_index_side"))
SCRIPTS = ("encode_throughput", "ingest_throughput", "query_latency", "triton_throughput")
SEISMIC_FINDINGS = (
    "What it tells (neural-search 3.6.0.0, the newest this machine can install: 3.7-3.9 are not served here; "
    "2 cores):\n\n"
    "- **Recall is lost in the engine's index, at neural-search's default `n_postings`.** It keeps 160 documents "
    "per term at 100,000 documents, and the engine alone then finds 0.63-0.67 of the exact English top 10 "
    "whatever the query side (`k`, `top_n`, `heap_factor`). 1,000 documents per term give 0.945, 2,000 give "
    "0.969, 4,000 give 0.984 (k 100, top_n 16, heap_factor 2); the byte quantisation alone costs little "
    "(SEISMIC scoring every document finds 0.986).\n"
    "- **The product's query now costs what the engine does.** One English `neural_sparse` clause, its best `k` "
    "hits rescored with their LexEcho part (`rank_feature` clauses): from n_postings 1,000 on, the product's p95 "
    "is 0.93-1.17x the engine alone's at every setting (p50 within 3 ms, 6 at top_n 32 and n_postings 4,000), "
    "where the earlier design (one clause per "
    "LexEcho band, each re-running the first phase in its rescore) spent two thirds to five sixths of its time "
    "in the rescore. Against the exact two-view top 10 the window matters: k 100 gives 0.944 at n_postings "
    "2,000, k 200 gives 0.963 at the same cost. From this sweep came n_postings 2,000, k 200 and heap_factor "
    "2; the index-side sweep below moved top_n from 16 to 8 and cluster_ratio to 0.05.\n"
    "- **neural-search's cache must hold the index.** It caches postings and forward index in the JVM heap "
    "within its circuit breaker, 10 % of the heap by default: 2.9 KB per document at the default n_postings, "
    "5.7 KB at 2,000. A 4 GB heap holds about 70,000 documents at 10 %; past that, reads go around the cache "
    "and decode each document's vector again (the earlier sweep was partly measured so). The bench raises the "
    "limit to 60 % and measures each index warmed up alone.\n"
    "- **At 100,000 documents SEISMIC does not pay on this machine.** Exact `rank_features` answers in 4 ms p50 / "
    "8 ms p95 and BM25 in 1 / 2 ms; SEISMIC at recall 0.96 takes 16 / 21 ms. Its cost follows the posting lists "
    "it visits (n_postings x top_n), not the collection, so whether it wins at 1M and beyond depends on how "
    "n_postings must grow with the collection to hold the recall (next section).")
SEISMIC_SCALING = (
    "What it tells: **on these vectors SEISMIC's cost does not stop growing with the collection.** With n_postings "
    "fixed at 2,000, tripling the collection took the product's recall@10 from 0.963 to 0.913 (the engine alone "
    "from 0.969 to 0.926 of the English top 10) and its p50 from 16 to 25 ms (an exponent b of 0.41), as more "
    "posting lists fill to their 2,000 documents. Holding the recall needs n_postings to grow about as fast as the "
    "collection (the 100,000-document sweep loses that much recall at about 580 documents per term: an exponent "
    "near 1.1), which is what `--expected-documents` now does, and which makes SEISMIC's cost grow with the "
    "collection too. Over the same step exact search went from 4 to 9 ms p50 (b 0.74), two-phase from 5 to 7 ms "
    "(b 0.31), BM25 stayed at 1 ms. Clustering took 1,072 s for 300,000 documents (444 s for 100,000), and "
    "neural-search's cache 4.5 KB of heap per document. The published SEISMIC results keep n_postings fixed on "
    "real learned sparse vectors, whose documents concentrate their weight in fewer terms (a stand-in document "
    "holds 31 % of its L1 mass in its 64 heaviest terms): the stand-in may be harder on posting pruning than "
    "MILCO's own vectors, and only released weights can tell (`--model`). The sweep stops at 300,000 documents; "
    "`bench/scale.py` (below) took SEISMIC to 1,000,000, where recall at n_postings 2,000 fell to 0.824.\n\n"
    "What it means for a 10M- and a 100M-document cluster, on vectors like these: a shard's search cost follows "
    "its own documents. At P80 a document takes about 4.4 KB of a `rank_features` index, so a 30 GB shard holds "
    "about 7M documents (10M documents in 2 such shards, 100M in 15). Within a shard exact search and two-phase "
    "keep growing (`bench/scale.py`, 100,000 to 1,000,000 documents: exact b 0.70, the default two-phase 0.51, 17 "
    "ms p95 at 1M with the exact top 10), so more, smaller shards over more cores keep each near the sizes measured; two-phase "
    "stays the default. SEISMIC would need n_postings of about 2 % of a shard's documents to hold recall 0.96, "
    "and 3-6 KB of heap per document in neural-search's cache: about 30-60 GB of heap across the data nodes for "
    "10M documents and 300-600 GB for 100M, besides about 50 minutes of clustering per million documents on two "
    "threads. If MILCO's own vectors hold their "
    "recall at a fixed n_postings, as the published SEISMIC results do on theirs, its cost per shard stops "
    "growing and the heap, not the latency, is its price; `--model` on the sweep is how to find out.")
SEISMIC_INDEX_SIDE = (
    "What it tells (the product's query against the exact two-view top 10; clustering is each index's "
    "force-merge):\n\n"
    "- **Fewer, larger clusters cost nothing here.** At k 200, top_n 16, heap_factor 2, `cluster_ratio` 0.05 found "
    "0.973 at 22 / 28 ms p50 / p95 and clustered in 329 s with 4.7 KB of cache per document; neural-search's 0.1 "
    "found 0.970 at 23 / 30 ms in 429 s (5.7 KB); 0.2 found 0.954 at 18 / 25 ms in 569 s (7.4 KB). Clustering time "
    "follows the number of centroids, recall does not: the default is now 0.05.\n"
    "- **Summaries must keep most of a cluster's weight.** `summary_prune_ratio` 0.2 skips clusters that hold "
    "hits (0.639 at 4 / 12 ms; 0.899 with heap_factor 4, at 24 ms p95); 0.6 found 0.980 at 26 / 33 ms, at 8.9 KB of "
    "cache per document and 559 s of clustering. neural-search's 0.4 stays.\n"
    "- **Half the query terms, nearly all the recall.** On every index but the over-pruned one, top_n 8 found at "
    "most 0.007 less than 16 and took 25-43 % less p95 (0.972 at 15 / 21 ms on `cluster_ratio` 0.05), as at "
    "300,000 documents (0.904 against 0.913, p95 19 against 33 ms): the default is now 8. heap_factor 4 adds "
    "up to 0.024 for 5-11 ms more p95; k 400 adds 0.002-0.003.")
SEISMIC_DEFAULTS = (
    "What it tells: **the defaults hold on new indices.** k 200, top_n 8, heap_factor 2 on n_postings 2,000 and "
    "cluster_ratio 0.05 found 0.971 of the exact two-view top 10 (target found 0.985) at 23 / 31 ms p50 / p95; "
    "top_n 16 found 0.974 at 35 / 49 ms and 12 found 0.973 at 26 / 36 ms. Doubling n_postings to 4,000 adds "
    "0.006 (0.977) for 1.6x the p95 (51 ms) and 13 % more clustering (635 s against 564 s). The machine ran about "
    "twice as slow as for the sweeps above (exact search 8 / 15 ms against 4 / 8, the same index clustered in 564 s "
    "against 329 s): compare within this table only; it is not in the plot.")
SCALE_FINDINGS = (
    "What it tells: **on neural-search 3.6 with two cores, no SEISMIC method gets below BM25's or two-phase's "
    "latency at recall@10 0.95, and the gap is the engine's, not the product's way of calling it.** At 1,000,000 "
    "documents the product's SEISMIC query answers in 27 / 36 ms p50 / p95 at recall@10 0.824 (target found "
    "0.910), the engine alone, one plain `neural_sparse` clause, in 25 / 33 ms at 0.821 of the English top 10: "
    "the product costs 1.09x the engine's time, and its first phase alone takes as long as the whole query (the "
    "LexEcho rescore of 200 hits is within the noise). The default two-phase answers in 13 / 17 ms with 0.999 of "
    "the exact top 10, exact `rank_features` in 20 / 27 ms, BM25 on the stand-in's rare query pieces in 1 / 3 "
    "ms. SEISMIC's exponent is the smallest measured (p50 ~ N^b from 100,000 to 1,000,000: b 0.20 for the "
    "product, 0.10 for the engine alone, against exact's 0.70 and the default two-phase's 0.51), but its recall "
    "falls as the collection grows at a fixed n_postings (0.963, 0.915, 0.824), so a flat latency is bought with "
    "lost documents. Clustering took 416 s at 100,000 documents, 881 s at 300,000 and 3,029 s at 1,000,000 (one "
    "force-merge each, two threads), and neural-search's cache 5.7, 4.5 and 3.0 KB of heap per document. "
    "Two-phase remains the default search. BM25's 7 ms p95 at 100,000 is the first measurement of the run, "
    "before the node's JIT settled; its negative b means nothing. This run predates the SEISMIC defaults top_n 8 "
    "and cluster_ratio 0.05 (it ran top_n 16 on neural-search's 0.1): at 100,000 documents they cost at most 0.009 "
    "of recall@10 for 25-43 % less p95 and 23 % less clustering, not yet measured at 1,000,000.")
SCALE_ONE_MILLION = (
    "**How SEISMIC got to 1,000,000 documents: loaded so that nothing clusters before the force-merge.** An "
    "earlier run stalled growing SEISMIC past 416,500 documents: neural-search 3.6 clusters a segment past "
    "`approximate_threshold` as it is flushed, on the thread holding the bulk request, and a search-idle shard "
    "that does not refresh flushed a 111,634-document segment (hot threads: `DocumentsWriterPerThread.flush` -> "
    "`SeismicPostingClusterer.cluster`). The kept run (`--budget-minutes 110 --heap 10g`, 101 minutes) loads the "
    "SEISMIC index under `index.refresh_interval: 1s` (explicit, so search-idle is off) and "
    "`index.merge.policy.max_merged_segment: 256mb` (no merge reaches the threshold), which `ingest`, `reindex` "
    "and `enrich` now hold for every load into a SEISMIC index (`milco_os/pipeline/bulk_loading.py`) and put "
    "back afterwards; the 1,000,000 documents arrived in 34 segments of at most 48,466 at 1,642 docs/s, with no "
    "stall. The bench ran 101 minutes, past its 60-minute aim: clustering alone took 50 of them.")
HIGH_RECALL = 0.88  # where the Pareto plot's second panel starts
MID = "mid (6L, h384, full vocabularies)"
# Paper (Table 13): average terms per document after percentile pruning P.
PAPER_TERMS = {"P0": 570, "P50": 286, "P80": 115, "P90": 58, "P95": 29}
RELEASED_FLOP_PER_TOKEN = 2 * (24 * (4 * 1024**2 + 2 * 1024 * 4096) + 1024 * 768 + 768 * 768 + 768 * 30522)
H100_BF16_DENSE_FLOPS = 989e12
ASSUMED_MFU = 0.4
TOKENS_PER_DOC = 128
SHARD_TARGET_BYTES = 30e9


def run(script: str, measure: bool) -> tuple[dict, str]:
    """A script's JSON and markdown results: measured now, or (``measure`` false) as last kept."""
    md, js = RESULTS / f"{script}.md", RESULTS / f"{script}.json"
    if measure:
        subprocess.run([sys.executable, str(BENCH / f"{script}.py"), "--out", str(md), "--json-out", str(js)],
                       check=True, cwd=BENCH.parent)
    return json.loads(js.read_text()), md.read_text()


def measured_on(measure: bool) -> str:
    """The day the kept results were measured: today when measuring now, else the day recorded then."""
    record = RESULTS / "measured_on.json"
    if measure:
        record.write_text(json.dumps({"date": datetime.date.today().isoformat()}) + "\n")
    return json.loads(record.read_text())["date"]


def save(figure, name: str) -> str:
    figure.tight_layout()
    figure.savefig(PLOTS / name, dpi=120)
    plt.close(figure)
    return f"plots/{name}"


def plot_index_size(query: dict) -> str:
    specs = [r["spec"] for r in query["results"]]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.bar(specs, [r["bytes_per_doc"] / 1024 for r in query["results"]], color="tab:blue")
    axis.set_xlabel("document pruning spec")
    axis.set_ylabel("index size per document (KiB)")
    axis.set_title("Index size vs pruning (tiny random model)")
    return save(figure, "index_size_vs_pruning.png")


def plot_latency(query: dict) -> str:
    specs = [r["spec"] for r in query["results"]]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for mode, color in zip(("MILCO full", "MILCO query-pruned topk:32", "MILCO two-phase", "BM25 (baseline)"),
                           ("tab:blue", "tab:orange", "tab:green", "tab:gray")):
        axis.plot(specs, [r[mode]["p50"] for r in query["results"]], marker="o", color=color, label=f"{mode} p50")
        axis.plot(specs, [r[mode]["p95"] for r in query["results"]], linestyle="--", color=color,
                  label=f"{mode} p95")
    axis.set_xlabel("document pruning spec")
    axis.set_ylabel("query latency (ms)")
    axis.set_title(f"Query latency vs pruning ({query['machine']})", fontsize=9)
    axis.legend(fontsize=7, ncol=2)
    return save(figure, "latency_vs_pruning.png")


def plot_fidelity(query: dict) -> str:
    specs = [r["spec"] for r in query["results"]]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(specs, [r["fidelity"] for r in query["results"]], marker="o")
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("document pruning spec")
    axis.set_ylabel("top-10 overlap with exact scoring")
    axis.set_title("Fidelity vs pruning (tiny random model: flat weights prune badly)", fontsize=9)
    return save(figure, "fidelity_vs_pruning.png")


def plot_encode(encode: dict, triton: dict) -> str:
    mid = [r for r in encode["results"] if r["model"] == MID]
    batches = [r["batch"] for r in mid]
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(batches, [r["milco_os"]["docs_per_s"] for r in mid], marker="o", label="milco-os in-process")
    axis.plot(batches, [r["baseline"]["docs_per_s"] for r in mid], marker="s", label="naive baseline")
    axis.plot([r["batch"] for r in triton["by_batch"]], [r["docs_per_s"] for r in triton["by_batch"]], marker="^",
              label="Triton (gRPC, 4 in flight)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("batch size (texts per batch / request)")
    axis.set_ylabel("documents per second")
    axis.set_title(f"Encode throughput, mid model, CPU ({encode['machine']})", fontsize=9)
    axis.legend()
    return save(figure, "encode_throughput_vs_batch.png")


def scale_model(query: dict) -> str:
    sizes = {r["spec"]: r["bytes_per_doc"] for r in query["results"]}
    per_term = (sizes["topk:128"] - sizes["topk:16"]) / (128 - 16)
    fixed = sizes["topk:16"] - 16 * per_term
    docs_per_s = H100_BF16_DENSE_FLOPS * ASSUMED_MFU / (RELEASED_FLOP_PER_TOKEN * TOKENS_PER_DOC)
    rows = []
    for label, terms in PAPER_TERMS.items():
        per_doc = fixed + terms * per_term
        cells = [label, str(terms), f"{per_doc:.0f}"]
        for docs in (10e6, 100e6):
            total = per_doc * docs
            cells += [f"{total / 1e9:.1f} GB", str(max(1, math.ceil(total / SHARD_TARGET_BYTES)))]
        rows.append("| " + " | ".join(cells) + " |")
    gpu_hours = {docs: docs / docs_per_s / 3600 for docs in (10e6, 100e6)}
    return "\n".join([
        "## Scale model (extrapolated, not measured)",
        "",
        f"Measured on the tiny model's index: {per_term:.1f} bytes per stored term plus {fixed:.0f} bytes per "
        "document (source, milco_meta, doc values), from the difference between the topk:128 and topk:16 "
        "indices above. Terms per document after pruning are the paper's (Table 13, MIRACL). Shards sized "
        f"to {SHARD_TARGET_BYTES / 1e9:.0f} GB, one replica not counted.",
        "",
        "| pruning | terms/doc | bytes/doc | 10M docs | shards | 100M docs | shards |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Encode cost: the released architecture (24 layers, hidden 1024, 30,522 + 250,002 vocabularies) costs "
        f"{RELEASED_FLOP_PER_TOKEN / 1e6:.0f} MFLOP per token without attention; at {TOKENS_PER_DOC} tokens per "
        f"document and {ASSUMED_MFU:.0%} of an H100's {H100_BF16_DENSE_FLOPS / 1e12:.0f} dense bf16 TFLOP/s, "
        f"~{docs_per_s:,.0f} documents/s per GPU: {gpu_hours[10e6]:.1f} GPU-hours for 10M documents, "
        f"{gpu_hours[100e6]:.1f} for 100M. The utilisation is an assumption until measured on a GPU.",
    ])


def gpu_section() -> str:
    """The last kept ``bench/gpu_encode.py`` table (it needs a GPU, so ``run_all`` never measures it)."""
    kept = RESULTS / "gpu_encode.md"
    header = ("## Encoding at the GPU's limit (`bench/gpu_encode.py`)\n\n"
              "The released architecture (24 layers, hidden 1024, vocabularies 30,522 and 250,002) with random "
              "weights calibrated to sparse output, written and loaded as a released checkpoint. Baseline: the "
              "authors' way (fixed batches of 32 padded to a multiple of 32, bf16 autocast, full logits, dense "
              "rows to the host); floor: the backbone alone on milco-os's batches. Run it by hand on a GPU machine "
              "with `python bench/gpu_encode.py --out bench/results/gpu_encode.md --json-out "
              "bench/results/gpu_encode.json`.\n\n")
    if kept.is_file():
        return header + kept.read_text()
    rehearsal = RESULTS / "gpu_encode_small.md"
    text = header + "Not measured on a GPU yet.\n"
    if rehearsal.is_file():
        text += ("\nThe same code with `--small` (2 layers, hidden 128, vocabularies 4,000 and 6,000) on this CPU, "
                 "a rehearsal, not a GPU figure; the authors' way runs bf16 autocast, which is slow on a CPU:\n\n"
                 + rehearsal.read_text())
    return text


def reindex_workers_section() -> str:
    """The last kept ``bench/reindex_workers.py`` table (it starts a 3-node cluster, so it runs by hand)."""
    kept = RESULTS / "reindex_workers.md"
    header = ("## Reindex over worker processes and nodes (`bench/reindex_workers.py`)\n\n"
              '`milco-os reindex --workers N` against one node and a 3-node cluster started by the script. '
              'Baseline: one worker on the same cluster in the same run. Each multi-worker count runs twice: with '
              "torch's threads in every worker (the default) and with `--worker-threads` giving each worker its "
              "share (torch's count divided by N). Run it by hand with `python bench/reindex_workers.py --out "
              'bench/results/reindex_workers.md --json-out bench/results/reindex_workers.json`. On this 2-core '
              'machine the cluster, the encoders and the client share two cores: more processes only add their '
              "start (Python, torch and the model loaded in each, counted in the job's time) and contend for the "
              "same cores, so the workers' gain shows on hosts with cores (or GPU Triton servers) to spare, not "
              'here.\n\n')
    threads = ('\nThreads per worker, on this machine: no difference shows above the noise. An earlier run of the '
               'same comparison the same day (2026-11-29, 258 s) had every pair the other way round: the share was '
               'slower by 0.54 vs 0.61x, 0.33 vs 0.43x (1 node) and 1.18 vs 1.22x, 0.85 vs 0.91x (3 nodes). Here, on '
               'the same pairs, it is within 0.01 (0.61 vs 0.61x, 0.40 vs 0.41x, 1 node) or faster (1.21 vs 1.07x, '
               '0.84 vs 0.77x, 3 nodes). With the tiny model the workers mostly wait on the cluster, so two cores '
               "are never both kept busy by encoding. That is why the default stays torch's (every core in each "
               'worker), and the share is an option for hosts where the model keeps the cores busy.\n')
    return header + (kept.read_text() + threads if kept.is_file() else "Not measured yet.\n")


def seismic_sweep_section() -> str:
    """The last kept ``bench/seismic_sweep.py`` table (it builds SEISMIC indices of 100,000 documents, so it runs
    by hand), with what it tells."""
    kept = RESULTS / "seismic_sweep.md"
    header = ("## SEISMIC: the engine alone against the product's queries (`bench/seismic_sweep.py`)\n\n"
              "The stand-in collection of `bench/scale.py` at 100,000 documents (P80), in a `rank_features` index "
              "(the exact reference) and in one SEISMIC index of the product's layout per `n_postings`, each "
              "force-merged to one segment. The engine alone is one `neural_sparse` clause of the query's English "
              "terms on `milco_en`, no rescore, against the exact English-only top 10; the product's query and its "
              "first phase alone (its body without the rescore) against the exact two-view top 10. Run it by hand "
              "with `python bench/seismic_sweep.py --out bench/results/seismic_sweep.md --json-out "
              "bench/results/seismic_sweep.json`.\n\n"
              + SEISMIC_FINDINGS + "\n\n")
    larger = RESULTS / "seismic_sweep_300k.md"
    more = ("\n### 300,000 documents, n_postings 2,000\n\nThe same bench at three times the collection, with the "
            "n_postings chosen at 100,000. Run by hand with `python bench/seismic_sweep.py --docs 300000 "
            "--n-postings 2000 --out bench/results/seismic_sweep_300k.md --json-out "
            "bench/results/seismic_sweep_300k.json`.\n\n" + SEISMIC_SCALING + "\n\n" + larger.read_text()
            if larger.is_file() else "")
    index_side = RESULTS / "seismic_sweep_index_side.md"
    more += ("\n### 100,000 documents, index side: `cluster_ratio` and `summary_prune_ratio`\n\nOne index per "
             "setting, n_postings 2,000, run by hand with the command under the table (`--index-variant`).\n\n"
             + SEISMIC_INDEX_SIDE + "\n\n" + index_side.read_text() if index_side.is_file() else "")
    defaults = RESULTS / "seismic_sweep_defaults.md"
    more += ("\n### 100,000 documents, the defaults: top_n 8 and cluster_ratio 0.05\n\nTwo new indices, "
             "n_postings 2,000 and 4,000, each with the product's cluster_ratio; the query-side settings around the "
             "product's. Run by hand with the command under the table.\n\n" + SEISMIC_DEFAULTS + "\n\n"
             + defaults.read_text() if defaults.is_file() else "")
    return header + (kept.read_text() if kept.is_file() else "Not measured yet.\n") + more


def plot_seismic_pareto(sweeps: list[dict]) -> str:
    """Recall@10 against p95 of the product's SEISMIC query, one curve per collection size and index setting over
    the query-side settings, with exact search, BM25 and two-phase as points (``bench/seismic_sweep.py``): all of it,
    and beside it the high-recall corner."""
    curves: dict[tuple[int, str], list[dict]] = {}
    baselines: dict[tuple[int, str], dict] = {}
    for sweep in sweeps:
        measured: dict[tuple[int, str], list[dict]] = {}
        for row in sweep["rows"]:
            if row.get("kind") == "product":
                setting = row.get("index_setting", f"n_postings {row['n_postings']}")
                named = setting if "cluster_ratio" in setting else f"{setting}, neural-search's cluster_ratio"
                measured.setdefault((sweep["docs"], named), []).append(row)
            elif row.get("kind"):
                baselines[sweep["docs"], row["kind"]] = row
        curves.update(measured)
    markers = dict(zip(sorted({docs for docs, _ in curves}), "os^D"))
    figure, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for axis, lowest in zip(axes, (0.0, HIGH_RECALL)):
        for (docs, kind), row in baselines.items():
            if row["recall_at_10"] >= lowest:
                axis.scatter(row["took_p95"], row["recall_at_10"], s=40, marker=markers.get(docs, "x"), color="black")
                axis.annotate(f"{kind} ({docs // 1000}k)", (row["took_p95"], row["recall_at_10"]),
                              fontsize=6, xytext=(4, -10), textcoords="offset points")
        for (docs, setting), points in curves.items():
            front = pareto_front(points)
            line, = axis.plot([r["took_p95"] for r in front], [r["recall_at_10"] for r in front],
                              marker=markers[docs], label=f"{docs:,} documents, {setting}")
            axis.scatter([r["took_p95"] for r in points], [r["recall_at_10"] for r in points], s=12,
                         marker=markers[docs], color=line.get_color())
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xticks([2, 5, 10, 20, 50])
        axis.set_xlabel("server took p95 (ms, log scale)")
        axis.set_ylabel("recall@10 against the exact two-view top-10")
    axes[1].set_ylim(HIGH_RECALL, 1.005)
    shown = [row["took_p95"] for points in (*curves.values(), baselines.values()) for row in points
             if row["recall_at_10"] >= HIGH_RECALL]
    axes[1].set_xlim(min(shown) / 1.2, max(shown) * 1.2)
    axes[1].set_title(f"recall@10 from {HIGH_RECALL}; lines join each setting's front", fontsize=8)
    axes[0].set_title(f"SEISMIC: recall vs p95 per index setting over k, top_n, heap_factor ({sweeps[0]['machine']})",
                      fontsize=8)
    axes[0].legend(fontsize=6, loc="lower left", bbox_to_anchor=(0.0, 0.12))  # between BM25 and the curves
    return save(figure, "seismic_recall_vs_p95.png")


def pareto_front(points: list[dict]) -> list[dict]:
    """The points no other beats on both p95 and recall@10, fastest first."""
    front: list[dict] = []
    for row in sorted(points, key=lambda row: (row["took_p95"], -row["recall_at_10"])):
        if not front or row["recall_at_10"] > front[-1]["recall_at_10"]:
            front.append(row)
    return front


def plot_scale_latency(scale: dict) -> str:
    """Latency (server took p95) against recall@10 vs exact, one point per method of ``bench/scale.py``, at the
    largest collection."""
    largest = scale["collections"][-1]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for row in largest["queries"]:
        axis.scatter(row["recall_at_10"], row["took_p95"], s=40, marker="s" if row["method"].startswith("BM25") else "o")
        axis.annotate(row["method"], (row["recall_at_10"], row["took_p95"]), fontsize=6, xytext=(4, 3),
                      textcoords="offset points")
    axis.set_ylim(bottom=0)
    axis.set_xlabel("recall@10 against its exact top-10")
    axis.set_ylabel("server took p95 (ms)")
    axis.set_title(f"{largest['docs']:,} documents: latency vs recall per method ({scale['machine']})", fontsize=8)
    return save(figure, "scale_latency_vs_recall.png")


def plot_scale_growth(scale: dict) -> str:
    """Each method's took p50 against the collection size, log-log (the slope is its exponent b)."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for entry in scale["scaling"]:
        points = sorted((int(docs), at["took_p50"]) for docs, at in entry["at"].items())
        label = entry["method"] + ("" if entry["b"] is None else f" (b {entry['b']:.2f})")
        axis.plot([n for n, _ in points], [max(t, 0.5) for _, t in points], marker="o", label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("documents (log scale)")
    axis.set_ylabel("server took p50 (ms, log scale)")
    axis.legend(fontsize=6)
    axis.set_title(f"Latency as the collection grows ({scale['machine']})", fontsize=8)
    return save(figure, "scale_latency_vs_documents.png")


def plot_scale_size(scale: dict) -> str:
    """Bytes per document against terms per document: each pruning level here, and the paper's SEISMIC indices."""
    figure, axis = plt.subplots(figsize=(7, 4))
    terms = [r["en_terms"] for r in scale["sizes"]]
    axis.plot(terms, [r["bytes_per_doc"] for r in scale["sizes"]], marker="o", label="rank_features, vectors in _source")
    axis.plot(terms, [r["bytes_per_doc_no_source"] for r in scale["sizes"]], marker="^",
              label="rank_features, vectors out of _source")
    for level, r in zip((r["level"] for r in scale["sizes"]), scale["sizes"]):
        axis.annotate(level, (r["en_terms"], r["bytes_per_doc"]), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")
    paper = scale["paper_sizes"]
    axis.scatter([p["terms"] for p in paper], [p["bytes_per_doc"] for p in paper], marker="x", color="black",
                 label="paper: SEISMIC, 32M MIRACL-en passages")
    axis.set_xlabel("English terms per document (LexEcho terms in proportion)")
    axis.set_ylabel("index bytes per document")
    axis.set_title("Index size vs terms per document", fontsize=9)
    axis.legend(fontsize=7)
    return save(figure, "scale_bytes_vs_terms.png")


def scale_section() -> tuple[str, list[str]]:
    """The last kept ``bench/scale.py`` tables and its two plots (the run is long, so ``run_all`` never runs it)."""
    header = ("## A growing collection, to a million documents (`bench/scale.py`)\n\n"
              "Stand-in vectors (`bench/standin.py`): terms per document at the paper's pruning levels, Zipfian "
              "document frequencies, the model's weight ranges; a document's text is its own pieces, so BM25 "
              "runs on the same collection. Costs only, no retrieval quality. Written through the product's "
              "ingest path onto one local node with neural-search 3.6.0.0, the newest release the node download "
              "could fetch (3.9's native SEISMIC engine, `--seismic-engine native`, is not measured). Baselines: "
              "a plain `parallel_bulk` of the same documents and fields for ingest, BM25 on the same collection "
              "for queries; recall@10 is against the exact dot product's top-10. One collection grows through "
              "100,000, 300,000 and 1,000,000 documents, every method measured at each size with the same "
              "queries. Run it by hand with `python bench/scale.py --out bench/results/scale.md --json-out "
              "bench/results/scale.json`.\n\n" + SCALE_FINDINGS + "\n\n" + SCALE_ONE_MILLION + "\n\n")
    md, js = RESULTS / "scale.md", RESULTS / "scale.json"
    if not js.is_file():
        return header + "Not measured yet.\n", []
    scale = json.loads(js.read_text())
    return header + md.read_text() + "\n" + scale_summary(scale), [plot_scale_latency(scale), plot_scale_growth(scale),
                                                                   plot_scale_size(scale)]


def scale_summary(scale: dict) -> str:
    """The largest collection's figures against their aims: the fastest method at each recall bar next to BM25,
    and the product's ingest rate next to plain ``_bulk``."""
    queries = scale["collections"][-1]["queries"]
    bm25 = next(row for row in queries if row["method"].startswith("BM25"))
    lines = []
    for bar in (0.95, 0.98):
        qualifying = [row for row in queries if row["recall_at_10"] >= bar and row is not bm25
                      and row["reference"] == "exact rank_features"]
        best = min(qualifying, key=lambda row: row["took_p95"])
        lines.append(f"- Fastest method with recall@10 ≥ {bar} at {scale['collections'][-1]['docs']:,} documents: "
                     f"{best['method']}, p95 {best['took_p95']:.0f} ms, "
                     f"{best['took_p95'] / bm25['took_p95']:.2f}× BM25's {bm25['took_p95']:.0f} ms "
                     f"(recall {best['recall_at_10']:.3f}).")
    rows = scale["ingest"]["rows"]
    product = next(row for name, row in rows.items() if name.startswith("milco-os"))
    base = next(row for name, row in rows.items() if "baseline" in name)
    lines.append(f"- Ingest through the product: {product['docs_per_s'] / base['docs_per_s']:.2f}× the plain "
                 f"`_bulk` rate ({product['docs_per_s']:.0f} vs {base['docs_per_s']:.0f} docs/s).")
    return "\n".join(lines) + "\n"


def main() -> None:
    measure = "--render-only" not in sys.argv[1:]
    RESULTS.mkdir(exist_ok=True)
    PLOTS.mkdir(exist_ok=True)
    started = time.perf_counter()
    outputs = {script: run(script, measure) for script in SCRIPTS}
    (encode, encode_md), (ingest, ingest_md), (query, query_md), (triton, triton_md) = (outputs[s] for s in SCRIPTS)
    plots = [plot_index_size(query), plot_latency(query), plot_fidelity(query), plot_encode(encode, triton)]
    scale_md, scale_plots = scale_section()
    plots += scale_plots
    sweeps = [json.loads(path.read_text()) for path in SWEEPS if path.is_file()]
    if sweeps:
        plots.append(plot_seismic_pareto(sweeps))
    command = "MILCO_OS_CACHE=.cache/milco-os .venv/bin/python bench/run_all.py"
    sections = [
        "# Benchmark results",
        "",
        f"Measured by `{command}` on {measured_on(measure)} (sections run by hand give their own "
        "command and date). Every figure is measured "
        "side by side with its baseline in the same run and shown as a ratio where one applies; absolute numbers "
        f"belong to the machine named with each table ({encode['machine']}). Ingest and query texts come from "
        "the sample multilingual corpus (`milco_os/data/sample/`), encode texts from the package's multilingual "
        "sample sentences. Models have random weights: "
        "retrieval quality figures on them are meaningless, only costs and fidelity to exact scoring are.",
        "",
        "## Encode throughput (`bench/encode_throughput.py`)",
        "",
        "Baseline: fixed-size batches in input order padded to their longest text, the full `[batch, seq, 30522]` "
        "logits tensor and the dense output copied to the host. milco-os: length-sorted batches within a token "
        "budget; on a CPU the vocabulary projection runs on the real positions only, packed in row chunks and "
        "scatter-maxed into their texts; both views are pruned for the whole batch at once and copied off in one "
        "piece. On this CPU milco-os runs at the fp32 matrix-multiply floor, so its edge over the baseline is the "
        "baseline's padding and its memory.",
        "",
        encode_md,
        "## Ingest throughput (`bench/ingest_throughput.py`)",
        "",
        "Baseline: the sequential cost (encode + bulk) of the same run; target wall < 1.1 x max(encode, bulk).",
        "",
        ingest_md,
        "## Query latency, fidelity and index size (`bench/query_latency.py`)",
        "",
        "Baseline: BM25 on the same index and queries. The tiny random model's query vectors are dense (~460 "
        "terms), a worst case for MILCO full; real MILCO vectors are far sparser.",
        "",
        query_md,
        "## Triton vs in-process encoding (`bench/triton_throughput.py`)",
        "",
        "Baseline: in-process encoding of the same texts in the same run. Server and client share this CPU, so "
        "Triton can only add overhead here; bytes per document follow the active terms. The released-size "
        "architecture on a GPU is measured by `bench/gpu_encode.py` (next section).",
        "",
        triton_md,
        reindex_workers_section(),
        gpu_section(),
        scale_md,
        seismic_sweep_section(),
        "## Plots",
        "",
        *[f"![{Path(p).stem}]({p})" for p in plots],
        "",
        scale_model(query),
        "",
    ]
    (BENCH / "RESULTS.md").write_text("\n".join(sections))
    print(f"bench/RESULTS.md and {len(plots)} plots written in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
