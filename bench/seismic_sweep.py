"""SEISMIC on one collection: where its time and recall go, over index-side and query-side settings.

On ``--docs`` stand-in documents at P80 (``standin.py``), written through the product's ingest
path into a ``rank_features`` index (the exact reference) and one SEISMIC index per
``--n-postings`` value and per ``--index-variant`` (the product's layout: English in SEISMIC's
``milco_en``, LexEcho in ``rank_features``), each force-merged to one segment, every query is answered

- exactly: the two-view dot product and the English view alone (``rank_features``), and, on
  the first SEISMIC index, the English view alone on SEISMIC's own quantised vectors (a filter
  that every document passes, with ``k`` the collection size, makes SEISMIC score them all);
- by BM25 and the default two-phase search on the ``rank_features`` index (the baselines);
- on each SEISMIC index and for each query-side setting (``k``, ``top_n``, ``heap_factor``):
  by the engine alone (one ``neural_sparse`` clause of the query's English terms, no
  rescore) and by the product's query as ``build_body`` makes it (that clause, its best
  hits rescored with their LexEcho part); for the product's default setting also by its
  first phase alone (the body without its rescore), which splits its time.

Each row: the server's ``took`` p50/p95/p99, recall@10 against its reference, and
target-found@10 (the stand-in's ``query_target`` in the top 10); each index: its ingest rate,
bytes per document and force-merge (clustering) seconds. With ``--url`` the indices of an
earlier run of the same size are reused.

    python bench/seismic_sweep.py [--docs 100000] [--queries 200] [--n-postings default,1000,2000,4000]
                                  [--index-variant n_postings=2000,cluster_ratio=0.05 ...]
                                  [--url URL] [--out FILE] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from common import machine, markdown_table
from realism import realism, realism_table
from scale import (SPARSE_CACHE_LIMIT, clause, cluster_on_every_core, engine_alone, english, ingest, neural_search_version,
                   percentile, settle, store_bytes, warm_alone)
from standin import LEVELS, StandInEncoder, StandInModel

from milco_os.cluster import make_client
from milco_os.index.fields import QueryTerm
from milco_os.index.handle import IndexHandle, open_index
from milco_os.index.seismic_ceilings import measured_ceilings
from milco_os.index.seismic_parameters import SeismicIndex, SeismicSearch
from milco_os.index.setup import ensure_index
from milco_os.search import query_dsl as dsl
from milco_os.search.searcher import SearchOptions, build_body
from milco_os.services.opensearch_ml_plugins import ML_DEFAULT_VERSION
from milco_os.services.temporary_node import temporary_node

LEVEL = LEVELS["P80"]
RF_INDEX, SEISMIC_INDEX = "sweep-rf", "sweep-seismic"
DEFAULT = "default"  # neural-search's own n_postings
# The index-side parameters a variant may set, with the short form its index name uses.
ABBREVIATIONS = {"n_postings": "np", "cluster_ratio": "cr", "summary_prune_ratio": "spr"}
# Query-side settings (k, top_n, heap_factor) tried on every SEISMIC index: the product's default first, then each
# parameter alone halved or doubled (top_n also half as large again).
K, TOP_N, HEAP_FACTOR = SeismicSearch.k, SeismicSearch.top_n, SeismicSearch.heap_factor
SETTINGS = ((K, TOP_N, HEAP_FACTOR), (K // 2, TOP_N, HEAP_FACTOR), (K * 2, TOP_N, HEAP_FACTOR),
            (K, TOP_N, HEAP_FACTOR * 2), (K, TOP_N * 3 // 2, HEAP_FACTOR), (K, TOP_N * 2, HEAP_FACTOR))


@dataclass
class Answers:
    """Per query: the server's milliseconds and the ranked ids."""

    took_ms: list[float]
    rankings: list[list[str]]


def answer_all(client, index: str, bodies: list[dict]) -> Answers:
    """Each body once, one after another, after a pass to warm up."""
    took, rankings = [], []
    for timed in (False, True):
        for body in bodies:
            response = client.search(index=index, body=body)
            if timed:
                took.append(float(response["took"]))
                rankings.append([hit["_id"] for hit in response["hits"]["hits"]])
    return Answers(took, rankings)


def recall(got: list[list[str]], reference: list[list[str]]) -> float:
    return statistics.mean(len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(got, reference))


def found(got: list[list[str]], targets: list[str]) -> float:
    return statistics.mean(target in ranking for ranking, target in zip(got, targets))


def product(terms: list[QueryTerm], index: IndexHandle, k: int, top_n: int, heap_factor: float) -> dict:
    options = SearchOptions(source=False, field_parameters={"seismic": SeismicSearch(k, top_n, heap_factor)})
    return build_body("", terms, options, index.field)


def setting_label(k: int, top_n: int, heap_factor: float) -> str:
    return f"k {k}, top_n {top_n}, heap_factor {heap_factor:g}"


@dataclass(frozen=True)
class Variant:
    """One SEISMIC index of the sweep: the index-side parameters it sets; the product's defaults for the others but
    ``n_postings``, neural-search's own unless set."""

    settings: tuple[tuple[str, int | float], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``default``, an ``n_postings`` count, or ``KEY=VALUE[,KEY=VALUE...]`` over ``ABBREVIATIONS``' keys."""
        if text == DEFAULT:
            return cls()
        settings = []
        for part in (text if "=" in text else f"n_postings={text}").split(","):
            key, _, value = part.partition("=")
            if key not in ABBREVIATIONS:
                raise argparse.ArgumentTypeError(f"'{key}' in '{text}' is not one of {', '.join(ABBREVIATIONS)}")
            try:
                settings.append((key, int(value) if key == "n_postings" else float(value)))
            except ValueError:
                raise argparse.ArgumentTypeError(f"'{value}' in '{text}' is not a number for {key}") from None
        return cls(tuple(settings))

    @property
    def n_postings(self) -> str:
        return str(dict(self.settings).get("n_postings", DEFAULT))

    @property
    def made_with(self) -> tuple[tuple[str, int | float], ...]:
        """Every parameter the variant's index is made with, in ``ABBREVIATIONS``' order (neural-search's left out)."""
        given = dict(self.settings)
        made = {key: given.get(key, None if key == "n_postings" else getattr(SeismicIndex, key))
                for key in ABBREVIATIONS}
        return tuple((key, value) for key, value in made.items() if value is not None)

    @property
    def label(self) -> str:
        others = "".join(f", {key} {value:g}" for key, value in self.made_with if key != "n_postings")
        return f"n_postings {self.n_postings}{others}"

    @property
    def index(self) -> str:
        return SEISMIC_INDEX + "".join(f"-{ABBREVIATIONS[key]}{value:g}" for key, value in self.made_with)


def variants_of_counts(text: str) -> tuple[Variant, ...]:
    """``--n-postings``: comma-separated counts (or ``default``), one variant each."""
    return tuple(Variant.parse(count) for count in text.split(",") if count)


def build(client, encoder: StandInEncoder, docs: int, variants: tuple[Variant, ...]) -> dict:
    """The indices of ``docs`` documents (kept when they already hold them), force-merged; their figures: the
    exact reference and one SEISMIC index per variant."""
    figures = {}
    sample = [encoder.model.document_text(n) for n in range(0, docs, max(1, docs // 256))]
    parameters = measured_ceilings(encoder, sample, SeismicIndex(), LEVEL.prune)
    built = []
    wanted = [(RF_INDEX, "rank_features", None)]
    wanted += [(variant.index, "seismic", replace(parameters, **{"n_postings": None, **dict(variant.made_with)}))
               for variant in variants]
    for name, vector_type, index_parameters in wanted:
        if client.indices.exists(index=name):
            client.indices.refresh(index=name)
            if client.count(index=name)["count"] == docs:
                continue
            client.indices.delete(index=name)
        handle, _ = ensure_index(client, name, replicas=0, vector_type=vector_type, parameters=index_parameters)
        summary = ingest(handle, encoder, docs, LEVEL.prune)
        figures[name] = {"docs_per_s": docs / summary.elapsed_s}
        built.append(name)
    for name in built:  # one at a time: each force-merge clusters on every core
        settle(client, [name])
        started = time.perf_counter()
        figures[name].update(bytes_per_doc=store_bytes(client, name) / docs, force_merge_s=time.perf_counter() - started)
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    return figures


def rows(client, encoder: StandInEncoder, texts: list[str], targets: list[str], docs: int,
         variants: tuple[Variant, ...], cache: dict) -> list[dict]:
    rf = open_index(client, RF_INDEX)
    vectors = encoder.encode_queries(texts)
    rf_terms = [dsl.query_terms(v, encoder.vocabulary, keys=rf.field.keys) for v in vectors]
    exact = SearchOptions(source=False, two_phase=False)
    measured: list[tuple[str, str, dict, Answers]] = []

    def run(name: str, reference: str, index: IndexHandle, bodies: list[dict], **about) -> None:
        answers = answer_all(client, index.name, bodies)
        measured.append((name, reference, about, answers))
        print(f"{name}: took p50 {percentile(answers.took_ms, 0.5):.1f} ms", flush=True)

    full, en_only = "exact, both views (rank_features)", "exact, English only (rank_features)"
    run(full, full, rf, [build_body("", t, exact, rf.field) for t in rf_terms], kind="exact")
    run(en_only, en_only, rf, [build_body("", english(t), exact, rf.field) for t in rf_terms])
    run("BM25", full, rf, [{"size": 10, "_source": False, "query": {"match": {"text": text}}} for text in texts],
        kind="bm25")
    run("two-phase (milco-os default: 16 terms, window 1000)", full, rf,
        [build_body("", t, SearchOptions(source=False, two_phase=True), rf.field) for t in rf_terms], kind="two-phase")
    seismic_indices = [variant.index for variant in variants]
    for number, variant in enumerate(variants):
        index = open_index(client, variant.index)
        cache[index.name] = warm_alone(client, index.name, seismic_indices)
        terms = [dsl.query_terms(v, encoder.vocabulary, keys=index.field.keys) for v in vectors]
        if number == 0:
            run("SEISMIC exact, English only (its quantised vectors)", en_only, index,
                [{"size": 10, "_source": False, "query": clause(t, {"k": docs, "filter": {"match_all": {}}})}
                 for t in terms])
        for setting in SETTINGS:
            label = f"{variant.label}: {{}} ({setting_label(*setting)})"
            run(label.format("engine alone"), en_only, index, [engine_alone(t, *setting) for t in terms])
            bodies = [product(t, index, *setting) for t in terms]
            run(label.format("product"), full, index, bodies, kind="product", n_postings=variant.n_postings,
                index_setting=variant.label, setting=setting)
            if setting == SETTINGS[0]:
                run(label.format("product, first phase only"), full, index,
                    [{key: value for key, value in body.items() if key != "rescore"} for body in bodies])
    answers = {name: a for name, _, _, a in measured}
    return [{"method": name, "reference": reference, **about,
             **{f"took_p{p}": percentile(a.took_ms, p / 100) for p in (50, 95, 99)},
             "recall_at_10": recall(a.rankings, answers[reference].rankings),
             "target_found_at_10": found(a.rankings, targets)} for name, reference, about, a in measured]


def table(report: dict) -> str:
    text = markdown_table(["method", "against", "recall@10", "target found@10", "took p50 / p95 / p99 ms"], [
        [r["method"], r["reference"], f"{r['recall_at_10']:.3f}", f"{r['target_found_at_10']:.3f}",
         f"{r['took_p50']:.1f} / {r['took_p95']:.1f} / {r['took_p99']:.1f}"] for r in report["rows"]])
    built = "; ".join(f"{name} {row['docs_per_s']:.0f} docs/s, {row['bytes_per_doc']:.0f} bytes/doc, force-merge "
                      f"{row['force_merge_s']:.0f} s" for name, row in report["built"].items())
    cache = "; ".join(f"{name} {size / 2**20:.0f} MB ({size / report['docs']:.0f} bytes/doc)"
                      for name, size in report["sparse_cache_bytes"].items())
    text += "\n\nThe vectors' shape (means of unpruned vectors; `realism.py`):\n\n" + realism_table(report["realism"])
    return (text + f"\n\n{report['queries']} stand-in queries on {report['docs']} documents at {LEVEL.name}, one "
            f"force-merged segment per index, one local node with neural-search {report['neural_search']} "
            f"({report['machine']}). {built or 'Indices reused.'}\n\nEach SEISMIC index is measured alone in neural-search's "
            f"cache (the others cleared, it warmed up; limit {report['sparse_cache_limit']} of the heap), which it "
            f"takes: {cache}.\n"
            f"\nMeasured on {report['date']} by `{report['command']}`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--n-postings", default=f"{DEFAULT},1000,2000,4000", type=variants_of_counts,
                        help=f"comma-separated n_postings values ('{DEFAULT}': neural-search's), one SEISMIC index each")
    parser.add_argument("--index-variant", type=Variant.parse, action="append", default=[], metavar="KEY=VALUE,...",
                        help=f"one more SEISMIC index, with these of {', '.join(ABBREVIATIONS)} (repeatable)")
    parser.add_argument("--model", type=Path, default=None,
                        help="a MILCO checkpoint whose vectors' shape on the sample corpus is shown beside the stand-in's")
    parser.add_argument("--heap", default="4g")
    parser.add_argument("--sparse-cache-limit", default="60%",
                        help=f"{SPARSE_CACHE_LIMIT}: the share of the heap SEISMIC's cache may take")
    parser.add_argument("--url", default=None, help="a node with neural-search whose indices may be reused")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    model = StandInModel()
    encoder = StandInEncoder(model)
    texts = [model.query_text(n, args.docs) for n in range(args.queries)]
    targets = [f"d{model.query_target(n, args.docs)}" for n in range(args.queries)]
    report = {"docs": args.docs, "queries": args.queries, "machine": machine(),
              "date": datetime.date.today().isoformat(), "command": shlex.join(["bench/seismic_sweep.py", *sys.argv[1:]])}
    report["realism"] = realism(encoder, args.docs, args.model)
    with node(args.url, args.heap) as url:
        client = make_client(url, timeout=3600)
        cluster_on_every_core(client)
        client.cluster.put_settings(body={"persistent": {SPARSE_CACHE_LIMIT: args.sparse_cache_limit}})
        report["neural_search"] = neural_search_version(client)
        report["sparse_cache_limit"] = args.sparse_cache_limit
        variants = (*args.n_postings, *args.index_variant)
        built = build(client, encoder, args.docs, variants)
        # An index reused keeps the figures of the run that built it, where that run's JSON is the one written now.
        earlier = json.loads(args.json_out.read_text()) if args.json_out and args.json_out.is_file() else {}
        wanted = [RF_INDEX, *(variant.index for variant in variants)]
        report["built"] = {name: (earlier.get("built") or {}).get(name) or built.get(name) for name in wanted
                           if name in built or name in (earlier.get("built") or {})} if earlier.get("docs") == args.docs \
            else built
        report["sparse_cache_bytes"] = {}
        report["rows"] = rows(client, encoder, texts, targets, args.docs, variants, report["sparse_cache_bytes"])
    text = table(report)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=1))


@contextmanager
def node(url: str | None, heap: str) -> Iterator[str]:
    if url:
        yield url
        return
    with temporary_node(version=ML_DEFAULT_VERSION, heap=heap, ml=True) as started:
        yield started.url


if __name__ == "__main__":
    main()
