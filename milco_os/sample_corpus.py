"""The sample multilingual corpus shipped with milco-os (BEIR layout: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv``); ``bench/data/make_sample_corpus.py`` writes it."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def sample_dir() -> Path:
    """The folder holding the sample corpus, inside the installed package."""
    return Path(str(resources.files("milco_os").joinpath("data", "sample")))


def sample_texts() -> list[str]:
    """The texts of the sample corpus (every language it has)."""
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]
