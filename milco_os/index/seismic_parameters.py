"""SEISMIC's parameters: index side (neural-search's ``method.parameters``) and query side, with their flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from milco_os.parameters import Flag, ParameterGroup


@dataclass(frozen=True)
class Ceilings:
    """The largest document (``ingest``) and query (``search``) weight one view's fields quantise exactly."""

    ingest: float = 3.0
    search: float = 16.0

    def __post_init__(self) -> None:
        if self.ingest <= 0 or self.search <= 0:
            raise ValueError(f"quantisation ceilings must be positive, not {self}")

    def __str__(self) -> str:
        return f"{self.ingest:g}:{self.search:g}"


def parse_ceilings(value: str) -> Ceilings:
    """``INGEST:SEARCH`` as the English view's ceilings."""
    try:
        numbers = [float(part) for part in value.split(":")]
        if len(numbers) != 2:
            raise ValueError(value)
        return Ceilings(*numbers)
    except ValueError:
        raise ValueError(f"'{value}' is not INGEST:SEARCH with positive numbers (e.g. 3.5:12)") from None


ALGORITHM_PARAMETERS = ("approximate_threshold", "n_postings", "cluster_ratio", "summary_prune_ratio")
# neural-search's engines for a SEISMIC field (``method.engine``, OpenSearch 3.9+): its Lucene codec, with the clustered
# postings cached in the JVM heap, or its native engine, off heap.
ENGINES = ("lucene", "native")
ENGINES_SINCE = (3, 9)
# Documents kept per posting list, from bench/seismic_sweep.py on MILCO-like vectors at P80: at 100,000 documents,
# 2,000 (with k 200) gave recall@10 0.96 against the exact two-view top 10 at 16 ms p50, where neural-search's own
# default (0.0005 x segment documents, at least 160) gave 0.68. At 300,000 documents the same 2,000 gave 0.91: to
# hold the recall the lists must grow about as fast as the collection (the 100,000-document sweep gives that recall
# loss at about 580 documents per term: 2,000 / 580 = 300,000 / 100,000 to the power 1.1).
MEASURED_DOCUMENTS = 100_000
MEASURED_N_POSTINGS = 2_000
N_POSTINGS_GROWTH = 1.0  # n_postings ~ documents ** N_POSTINGS_GROWTH past MEASURED_DOCUMENTS
# From the index-side sweep (bench/seismic_sweep.py --index-variant, 100,000 documents, n_postings 2,000): half of
# neural-search's 0.1 clusters per list kept recall@10 (0.973 against 0.970) and p95, and clustered 23% faster.
MEASURED_CLUSTER_RATIO = 0.05


def n_postings_for(documents: int) -> int:
    """Documents to keep per posting list in an index expected to hold ``documents``."""
    return round(MEASURED_N_POSTINGS * max(1.0, documents / MEASURED_DOCUMENTS) ** N_POSTINGS_GROWTH)


@dataclass(frozen=True)
class SeismicIndex:
    """Index-side SEISMIC parameters (neural-search's ``method.parameters``); None leaves neural-search's default.

    English weights are quantised to one byte over [0, ceiling] on the approximate path: a
    document weight above the ingest ceiling, or a query weight above the search ceiling,
    counts as the ceiling there (LexEcho is a ``rank_features`` field, scored exactly).
    Segments smaller than ``approximate_threshold`` score exactly.
    """

    approximate_threshold: int | None = 100_000
    n_postings: int | None = n_postings_for(MEASURED_DOCUMENTS)
    cluster_ratio: float | None = MEASURED_CLUSTER_RATIO
    summary_prune_ratio: float | None = None
    ceilings: Ceilings = Ceilings()
    engine: str | None = None  # neural-search's default (lucene) unless given

    def method(self) -> dict:
        """The ``method`` of the English field."""
        parameters = {name: getattr(self, name) for name in ALGORITHM_PARAMETERS if getattr(self, name) is not None}
        engine = {"engine": self.engine} if self.engine else {}
        return {"name": "seismic", **engine,
                "parameters": {**parameters, "quantization_ceiling_ingest": self.ceilings.ingest,
                               "quantization_ceiling_search": self.ceilings.search}}

    @classmethod
    def from_flags(cls, given: Mapping[str, Any]) -> SeismicIndex:
        """The parameters the index flags give: ``expected_documents`` sets ``n_postings`` unless it is given."""
        parameters = dict(given)
        expected = parameters.pop("expected_documents", None)
        if expected is not None and "n_postings" not in parameters:
            parameters["n_postings"] = n_postings_for(expected)
        return cls(**parameters)

    @classmethod
    def from_method(cls, method: dict) -> SeismicIndex:
        """The parameters of an index from the ``method`` of its English field (None where it left neural-search's)."""
        parameters = method.get("parameters") or {}
        ceilings = Ceilings(parameters.get("quantization_ceiling_ingest", Ceilings.ingest),
                            parameters.get("quantization_ceiling_search", Ceilings.search))
        return cls(**{name: parameters.get(name) for name in ALGORITHM_PARAMETERS},
                   ceilings=ceilings, engine=method.get("engine"))


@dataclass(frozen=True)
class SeismicSearch:
    """Query-side SEISMIC parameters: English candidates per segment (``k``, also the rescore window), the heaviest
    query terms whose posting lists are visited (``top_n``) and how eagerly clusters are skipped (``heap_factor``,
    higher visits more), from bench/seismic_sweep.py at 100,000 documents: ``k`` 100 left recall@10 at 0.94 where
    200 found 0.96; 8 query terms, against 16, lost at most 0.009 of recall@10 (at 100,000 and 300,000 documents) and
    took 25 to 43% less time at p95."""

    k: int = 200
    top_n: int = 8
    heap_factor: float = 2.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.top_n < 1 or self.heap_factor <= 0:
            raise ValueError(f"SEISMIC k and top_n must be >= 1 and heap_factor > 0, not {self}")


INDEX_PARAMETERS = ParameterGroup(SeismicIndex, (
    Flag("approximate-threshold", "approximate_threshold", minimum=0,
         help="seismic: segments with at least this many documents are searched approximately, smaller ones "
              "exactly."),
    Flag("expected-documents", "expected_documents", minimum=1,
         help="seismic: documents the index is expected to hold; --n-postings follows from it unless given (2,000 "
              "per 100,000 documents, as measured to hold recall@10 near 0.96 on MILCO-like vectors)."),
    Flag("n-postings", "n_postings", minimum=1,
         help="seismic: documents kept per posting list (neural-search's default: 0.0005 x segment documents, at "
              "least 160, found too few in bench/seismic_sweep.py)."),
    Flag("cluster-ratio", "cluster_ratio", kind=float, minimum=0, maximum=1, min_open=True, max_open=True,
         help="seismic: clusters per posting list, as a fraction of its documents (neural-search's own 0.1 "
              "clustered 23% slower at the same recall in bench/seismic_sweep.py)."),
    Flag("summary-prune-ratio", "summary_prune_ratio", kind=float, minimum=0, maximum=1, min_open=True,
         help="seismic: share of weight kept in each cluster summary [default: neural-search's, 0.4]."),
    Flag("seismic-engine", "engine", kind=str, choices=ENGINES,
         help="seismic: neural-search's engine for the field (OpenSearch 3.9+): lucene keeps the clustered postings "
              "in a JVM heap cache, native off heap [default: neural-search's, lucene]."),
    Flag("quantization-ceilings", "ceilings", kind=str, parse=parse_ceilings, metavar="INGEST:SEARCH",
         help="seismic: the largest English document and query weights kept exactly (larger ones are clipped); "
              "unless given, measured on the encoder with a sample of texts, else [default: 3:16]."),
), builder=SeismicIndex.from_flags)

SEARCH_PARAMETERS = ParameterGroup(SeismicSearch, (
    Flag("seismic-k", "k", minimum=1,
         help="seismic: English candidates per segment; the best of them get their LexEcho part added."),
    Flag("seismic-top-n", "top_n", minimum=1,
         help="seismic: heaviest English query terms, whose posting lists are visited."),
    Flag("seismic-heap-factor", "heap_factor", kind=float, minimum=0, min_open=True,
         help="seismic: higher visits more clusters (slower, better recall)."),
))
