"""The SEISMIC options of the commands that create indices (setup, ingest, reindex, enrich) and of search/eval."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

import click

from milco_os.index.seismic_ceilings import SAMPLE_TEXTS, measured_ceilings
from milco_os.index.vector_fields import Ceilings, Seismic, SeismicIndex, SeismicSearch
from milco_os.sample_corpus import sample_dir


def parse_ceilings(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[Ceilings, Ceilings] | None:
    """``INGEST:SEARCH`` (both views) or ``INGEST:SEARCH:M_INGEST:M_SEARCH`` as the English and LexEcho ceilings."""
    if value is None:
        return None
    try:
        numbers = [float(part) for part in value.split(":")]
        if len(numbers) not in (2, 4):
            raise ValueError(value)
        en = Ceilings(*numbers[:2])
        return en, Ceilings(*numbers[2:]) if len(numbers) == 4 else en
    except ValueError:
        raise click.BadParameter(f"'{value}' is not INGEST:SEARCH or INGEST:SEARCH:M_INGEST:M_SEARCH with positive "
                                 "numbers (e.g. 3.5:12)") from None


index_flags = (
    click.option("--approximate-threshold", type=click.IntRange(min=0), default=None,
                 help=f"seismic: segments with at least this many documents are searched approximately, smaller "
                      f"ones exactly [default: {SeismicIndex.approximate_threshold:,}]."),
    click.option("--n-postings", type=click.IntRange(min=1), default=None,
                 help="seismic: documents kept per posting list [default: neural-search's, 0.0005 x segment "
                      "documents, at least 160]."),
    click.option("--cluster-ratio", type=click.FloatRange(min=0, max=1, min_open=True, max_open=True), default=None,
                 help="seismic: clusters per posting list, as a fraction of its documents [default: 0.1]."),
    click.option("--summary-prune-ratio", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
                 help="seismic: share of weight kept in each cluster summary [default: 0.4]."),
    click.option("--quantization-ceilings", "ceilings", default=None, callback=parse_ceilings,
                 metavar="INGEST:SEARCH[:M_INGEST:M_SEARCH]",
                 help="seismic: the largest document and query weights kept exactly (larger ones are clipped), for "
                      "both views or English then LexEcho [default: measured on the encoder with a sample of texts]."),
)
INDEX_FLAGS = ("approximate_threshold", "n_postings", "cluster_ratio", "summary_prune_ratio", "ceilings")

search_flags = (
    click.option("--seismic-k", type=click.IntRange(min=1), default=SeismicSearch.k, show_default=True,
                 help="seismic: candidates per field and segment; the best of them get exact scores."),
    click.option("--seismic-top-n", type=click.IntRange(min=1), default=SeismicSearch.top_n, show_default=True,
                 help="seismic: heaviest query terms per field that choose the clusters to visit."),
    click.option("--seismic-heap-factor", type=click.FloatRange(min=0, min_open=True),
                 default=SeismicSearch.heap_factor, show_default=True,
                 help="seismic: higher visits more clusters (slower, better recall)."),
)
SEARCH_FLAGS = ("seismic_k", "seismic_top_n", "seismic_heap_factor")


def seismic_index_options(command: Callable) -> Callable:
    """The index-side SEISMIC options; the command receives them as one ``seismic_flags`` dict."""
    @functools.wraps(command)
    def with_flags(*args, **kwargs):
        return command(*args, seismic_flags={name: kwargs.pop(name) for name in INDEX_FLAGS}, **kwargs)

    for option in reversed(index_flags):
        with_flags = option(with_flags)
    return with_flags


def seismic_search(flags: dict) -> SeismicSearch:
    return SeismicSearch(k=flags["seismic_k"], top_n=flags["seismic_top_n"], heap_factor=flags["seismic_heap_factor"])


def sample_corpus_texts() -> list[str]:
    """The texts of the shipped sample corpus (every language it has)."""
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def jsonl_texts(path: Path, text_field: str) -> list[str]:
    """The first texts of a JSONL file (lines that are not JSON objects with a string text are passed over)."""
    texts = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in islice(lines, SAMPLE_TEXTS * 4):
            try:
                value = json.loads(line).get(text_field)
            except (ValueError, AttributeError):
                continue
            if isinstance(value, str):
                texts.append(value)
    return texts


def seismic_parameters(flags: dict, vector_field: str | None, *, creating: bool, encoder=None,
                       sample: Callable[[], Iterable[str]] = sample_corpus_texts, prune="none") -> SeismicIndex | None:
    """The SEISMIC parameters of an index about to get its MILCO fields (``creating``), ceilings measured with
    ``encoder`` unless given; None when it is not a new seismic one. Flags that cannot apply are an error."""
    given = {name: value for name, value in flags.items() if value is not None}
    flag = f"--{next(iter(given)).replace('_', '-')}" if given else ""
    if given and not creating:
        raise click.UsageError(f"{flag} applies when an index gets its MILCO fields; this one has them")
    if vector_field != Seismic.type_name:
        if given:
            raise click.UsageError(f"{flag} applies to --vector-field seismic only")
        return None
    if not creating:
        return None
    parameters = SeismicIndex(**{name: value for name, value in given.items() if name != "ceilings"})
    if flags["ceilings"]:
        en, m = flags["ceilings"]
        return replace(parameters, en_ceilings=en, m_ceilings=m)
    if encoder is None:
        raise click.UsageError("--vector-field seismic: give --model or --triton-url to measure the encoder's "
                               "weights for the quantisation ceilings, or --quantization-ceilings INGEST:SEARCH")
    return measured_ceilings(encoder, list(sample()), parameters, prune)
