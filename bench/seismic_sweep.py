"""SEISMIC on one collection: where its time and recall go, the engine alone against the product's queries.

On ``--docs`` stand-in documents at P80 (``standin.py``), written through the product's ingest
path into a ``rank_features`` index (the exact reference) and a SEISMIC index (the product's
layout: the English view in ``milco_en``, LexEcho in 32,768-wide bands), each force-merged to
one segment, every query is answered

- exactly: the two-view dot product and the English view alone (``rank_features``), and the
  English view alone on SEISMIC's own quantised vectors (a filter that every document
  passes, with ``k`` the collection size, makes SEISMIC score every document exactly);
- by the engine alone: one ``neural_sparse`` clause of the query's English terms on
  ``milco_en``, no bands, no rescore, for each query-side setting of ``--settings``;
- by the product's SEISMIC query as ``build_body`` makes it, and by its first phase alone
  (the same body without its rescore), which splits its time into first phase and rescore;
- by a first phase of one English clause whose best ``window`` hits are rescored exactly over
  both views in a second request (a filter of their ids, which SEISMIC scores exactly).

Each row: the server's ``took`` p50/p95/p99 (summed over both requests where there are two),
recall@10 against its reference, and target-found@10 (the stand-in's ``query_target`` in the
top 10). With ``--url`` the indices of an earlier run of the same size are reused.

    python bench/seismic_sweep.py [--docs 100000] [--queries 200] [--url URL] [--out FILE] [--json-out FILE]
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
from typing import Callable, Iterator

from common import machine, markdown_table
from scale import cluster_on_every_core, ingest, percentile, settle, store_bytes
from standin import LEVELS, StandInEncoder, StandInModel

from milco_os.cluster import make_client
from milco_os.index.fields import EN_FIELD, QueryTerm
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
# Query-side settings (k, top_n, heap_factor) of the engine alone: neural-search's defaults, the product's, more.
SETTINGS = ((10, 10, 1.0), (100, 16, 2.0), (100, 10, 1.0), (10, 16, 1.0), (10, 32, 1.0), (100, 32, 1.0),
            (10, 8, 1.0), (10, 16, 1.5), (100, 16, 1.0))
# First-phase settings whose best ``window`` hits are rescored exactly.
FIRST_PHASES = ((100, 16, 2.0), (100, 10, 1.0), (100, 32, 1.0))
# Query-side settings tried on the indices of each ``--n-postings``.
POSTINGS_SETTINGS = ((10, 16, 1.0), (100, 16, 2.0), (100, 32, 2.0))


@dataclass
class Answers:
    """Per query: the server's milliseconds and the ranked ids."""

    took_ms: list[float]
    rankings: list[list[str]]


SecondRequest = Callable[[int, dict], "dict | None"]


def answer_all(client, index: str, bodies: list[dict], then: SecondRequest = lambda number, response: None
               ) -> Answers:
    """Each body once, one after another, after a pass to warm up; ``then`` may give query ``number`` a second
    request built from the first's response, whose time is added and whose hits are the answer."""
    took, rankings = [], []
    for timed in (False, True):
        for number, body in enumerate(bodies):
            response = client.search(index=index, body=body)
            spent = response["took"]
            second = then(number, response)
            if second is not None:
                response = client.search(index=index, body=second)
                spent += response["took"]
            if timed:
                took.append(float(spent))
                rankings.append([hit["_id"] for hit in response["hits"]["hits"]])
    return Answers(took, rankings)


def recall(got: list[list[str]], reference: list[list[str]]) -> float:
    return statistics.mean(len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(got, reference))


def found(got: list[list[str]], targets: list[str]) -> float:
    return statistics.mean(target in ranking for ranking, target in zip(got, targets))


def english(terms: list[QueryTerm]) -> list[QueryTerm]:
    return [term for term in terms if term.field == EN_FIELD]


def clause(terms: list[QueryTerm], parameters: dict) -> dict:
    """One ``neural_sparse`` clause per field ``terms`` touch, with ``parameters`` (SEISMIC's method_parameters)."""
    by_field: dict[str, dict[str, float]] = {}
    for term in terms:
        by_field.setdefault(term.field, {})[term.key] = term.weight
    clauses = [{"neural_sparse": {name: {"query_tokens": tokens, "method_parameters": parameters}}}
               for name, tokens in by_field.items()]
    return clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses}}


def engine_alone(terms: list[QueryTerm], k: int, top_n: int, heap_factor: float, size: int = 10) -> dict:
    return {"size": size, "_source": False,
            "query": clause(english(terms), {"k": k, "top_n": top_n, "heap_factor": heap_factor})}


def exact_over(terms: list[QueryTerm], ids: list[str], size: int = 10) -> dict:
    """Both views scored exactly on ``ids`` (a filter of at most ``k`` documents makes SEISMIC score exactly)."""
    return {"size": size, "_source": False,
            "query": clause(terms, {"k": max(len(ids), 1), "filter": ids_filter(ids)})}


def ids_filter(ids: list[str]) -> dict:
    """The documents ``ids`` by their number ``n``: neural-search 3.6 builds its filter's weight without rewriting
    it first, which queries on ``_id`` need."""
    return {"terms": {"n": [int(doc_id[1:]) for doc_id in ids]}}


def postings_index(n_postings: int) -> str:
    return f"{SEISMIC_INDEX}-np{n_postings}"


def build(client, encoder: StandInEncoder, docs: int, n_postings: tuple[int, ...]) -> dict:
    """The indices of ``docs`` documents (kept when they already hold them), force-merged; their figures: the
    exact reference, SEISMIC with neural-search's index defaults, and one SEISMIC index per ``n_postings``."""
    figures = {}
    sample = [encoder.model.document_text(n) for n in range(0, docs, max(1, docs // 256))]
    parameters = measured_ceilings(encoder, sample, SeismicIndex(), LEVEL.prune)
    built = []
    wanted = [(RF_INDEX, "rank_features", None), (SEISMIC_INDEX, "seismic", parameters)]
    wanted += [(postings_index(n), "seismic", replace(parameters, n_postings=n)) for n in n_postings]
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
    if built:
        settle(client, built)
    for name in built:
        started = time.perf_counter()
        figures[name].update(bytes_per_doc=store_bytes(client, name) / docs, force_merge_s=time.perf_counter() - started)
        print(f"{name}: {json.dumps(figures[name])}", flush=True)
    return figures


def rows(client, encoder: StandInEncoder, texts: list[str], targets: list[str], docs: int,
         settings: tuple[tuple[int, int, float], ...], windows: tuple[int, ...], n_postings: tuple[int, ...]
         ) -> list[dict]:
    rf, seismic = open_index(client, RF_INDEX), open_index(client, SEISMIC_INDEX)
    vectors = encoder.encode_queries(texts)
    rf_terms = [dsl.query_terms(v, encoder.vocabulary, keys=rf.field.keys) for v in vectors]
    terms = [dsl.query_terms(v, encoder.vocabulary, keys=seismic.field.keys) for v in vectors]
    exact = SearchOptions(source=False, two_phase=False)
    measured: list[tuple[str, str, Answers]] = []

    def run(name: str, reference: str, index: IndexHandle, bodies: list[dict],
            then: SecondRequest = lambda number, response: None) -> None:
        answers = answer_all(client, index.name, bodies, then)
        measured.append((name, reference, answers))
        print(f"{name}: took p50 {percentile(answers.took_ms, 0.5):.1f} ms", flush=True)

    full, en_only = "exact, both views (rank_features)", "exact, English only (rank_features)"
    run(full, full, rf, [build_body("", t, exact, rf.field) for t in rf_terms])
    run(en_only, en_only, rf, [build_body("", english(t), exact, rf.field) for t in rf_terms])
    run("SEISMIC exact, English only (its quantised vectors)", en_only, seismic,
        [{"size": 10, "_source": False, "query": clause(english(t), {"k": docs, "filter": {"match_all": {}}})}
         for t in terms])
    for k, top_n, heap_factor in settings:
        run(f"engine alone: English clause, k {k}, top_n {top_n}, heap_factor {heap_factor:g}", en_only, seismic,
            [engine_alone(t, k, top_n, heap_factor) for t in terms])
    product = [build_body("", t, SearchOptions(source=False), seismic.field) for t in terms]
    search = SeismicSearch()
    label = f"k {search.k}, top_n {search.top_n}, heap_factor {search.heap_factor:g}"
    run(f"product SEISMIC query ({label})", full, seismic, product)
    run(f"product SEISMIC query, first phase only ({label})", full, seismic,
        [{key: value for key, value in body.items() if key != "rescore"} for body in product])

    def rescored(number: int, response: dict) -> dict:
        return exact_over(terms[number], [hit["_id"] for hit in response["hits"]["hits"]])

    for window in windows:
        for k, top_n, heap_factor in FIRST_PHASES:
            run(f"English first phase (k {max(k, window)}, top_n {top_n}, heap_factor {heap_factor:g}), "
                f"window {window} rescored exactly", full, seismic,
                [engine_alone(t, max(k, window), top_n, heap_factor, size=window) for t in terms], rescored)
    for count in n_postings:
        index = open_index(client, postings_index(count))
        for k, top_n, heap_factor in POSTINGS_SETTINGS:
            run(f"n_postings {count}: engine alone, k {k}, top_n {top_n}, heap_factor {heap_factor:g}", en_only, index,
                [engine_alone(t, k, top_n, heap_factor) for t in terms])
        bodies = [build_body("", t, SearchOptions(source=False), index.field) for t in terms]
        run(f"n_postings {count}: product SEISMIC query ({label})", full, index, bodies)
        run(f"n_postings {count}: product SEISMIC query, first phase only ({label})", full, index,
            [{key: value for key, value in body.items() if key != "rescore"} for body in bodies])
    answers = {name: a for name, _, a in measured}
    return [{"method": name, "reference": reference,
             **{f"took_p{p}": percentile(a.took_ms, p / 100) for p in (50, 95, 99)},
             "recall_at_10": recall(a.rankings, answers[reference].rankings),
             "target_found_at_10": found(a.rankings, targets)} for name, reference, a in measured]


def table(report: dict) -> str:
    text = markdown_table(["method", "against", "recall@10", "target found@10", "took p50 / p95 / p99 ms"], [
        [r["method"], r["reference"], f"{r['recall_at_10']:.3f}", f"{r['target_found_at_10']:.3f}",
         f"{r['took_p50']:.1f} / {r['took_p95']:.1f} / {r['took_p99']:.1f}"] for r in report["rows"]])
    built = "; ".join(f"{name} {row['docs_per_s']:.0f} docs/s, {row['bytes_per_doc']:.0f} bytes/doc, force-merge "
                      f"{row['force_merge_s']:.0f} s" for name, row in report["built"].items())
    return (text + f"\n\n{report['queries']} stand-in queries on {report['docs']} documents at {LEVEL.name}, one "
            f"force-merged segment per index, one local node ({report['machine']}). {built or 'Indices reused.'}\n"
            f"\nMeasured on {report['date']} by `{report['command']}`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--windows", default="100,200", help="rescore windows of the English first phase")
    parser.add_argument("--n-postings", default="",
                        help="comma-separated n_postings values, one more SEISMIC index each (default: none)")
    parser.add_argument("--heap", default="4g")
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
    with node(args.url, args.heap) as url:
        client = make_client(url, timeout=3600)
        cluster_on_every_core(client)
        n_postings = tuple(int(n) for n in args.n_postings.split(",") if n)
        report["built"] = build(client, encoder, args.docs, n_postings)
        report["rows"] = rows(client, encoder, texts, targets, args.docs, SETTINGS,
                              tuple(int(w) for w in args.windows.split(",")), n_postings)
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
