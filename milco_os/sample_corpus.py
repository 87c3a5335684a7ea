"""The sample multilingual corpus shipped with milco-os (BEIR layout: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``); ``bench/data/make_sample_corpus.py`` writes it."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_dir() -> Path:
    """The folder holding the sample corpus, inside the installed package."""
    return Path(str(resources.files("milco_os").joinpath("data", "sample")))
