"""How MILCO-like the stand-in's vectors are, beside an encoder's on the sample corpus.

Two-phase search relies on a query's weight sitting in its heaviest terms, SEISMIC's posting
pruning on a document's, and the product's SEISMIC first phase on the English view carrying
most of the weight. Each figure is a mean over texts, of unpruned vectors: the share of a
query's L1 mass in its 16 heaviest terms, of a document's in its 64 heaviest, and of each in
its LexEcho view. The encoder is the checkpoint given, else a tiny random one (whose figures
tell how the suite's checkpoints differ from a trained model, nothing about MILCO).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from common import markdown_table
from standin import StandInEncoder

from milco_os.encoding.contract import QUERY_MAX_LENGTH, SparseEncoder
from milco_os.encoding.sparse import SparseVector
from milco_os.model import MilcoEncoder
from milco_os.model.tiny import make_tiny_checkpoint
from milco_os.sample_corpus import sample_dir

QUERY_HEAD, DOCUMENT_HEAD = 16, 64


def head_share(vector: SparseVector, head: int) -> float:
    weights = np.sort(np.concatenate([vector.en_weights, vector.m_weights]))[::-1]
    return float(weights[:head].sum() / max(weights.sum(), 1e-12))


def lexecho_share(vector: SparseVector) -> float:
    return float(vector.m_weights.sum() / max(vector.en_weights.sum() + vector.m_weights.sum(), 1e-12))


def shape(documents: Sequence[SparseVector], queries: Sequence[SparseVector]) -> dict:
    """The figures of one encoder's vectors."""
    return {f"query_top{QUERY_HEAD}_share": statistics.mean(head_share(v, QUERY_HEAD) for v in queries),
            f"document_top{DOCUMENT_HEAD}_share": statistics.mean(head_share(v, DOCUMENT_HEAD) for v in documents),
            "query_lexecho_share": statistics.mean(map(lexecho_share, queries)),
            "document_lexecho_share": statistics.mean(map(lexecho_share, documents)),
            "query_terms": statistics.mean(len(v.en_ids) + len(v.m_ids) for v in queries),
            "document_terms": statistics.mean(len(v.en_ids) + len(v.m_ids) for v in documents)}


def sample_texts() -> tuple[list[str], list[str]]:
    """The sample corpus' passages and queries."""
    def texts(name: str) -> list[str]:
        return [json.loads(line)["text"] for line in (sample_dir() / name).read_text(encoding="utf-8").splitlines()]
    return texts("corpus.jsonl"), texts("queries.jsonl")


def encoder_shape(encoder: SparseEncoder) -> dict:
    documents, queries = sample_texts()
    return shape(encoder.encode_documents(documents), encoder.encode_queries(queries, max_length=QUERY_MAX_LENGTH))


def realism(standin: StandInEncoder, documents: int, model: Path | None = None, texts: int = 500) -> dict:
    """The stand-in's figures (on ``texts`` of its documents and queries of a ``documents`` collection) and the
    encoder's on the sample corpus (``model``, else a tiny random checkpoint calibrated to 100 English terms)."""
    numbers = range(0, documents, max(1, documents // texts))
    figures = {"stand-in": shape(standin.encode_documents([standin.model.document_text(n) for n in numbers]),
                                 standin.encode_queries([standin.model.query_text(n, documents)
                                                         for n in range(min(texts, 200))]))}
    if model is not None:
        figures[f"checkpoint {model.name}"] = encoder_shape(MilcoEncoder.from_pretrained(model, device="cpu"))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            tiny = make_tiny_checkpoint(Path(scratch), seed=7, en_terms_per_text=100)
            figures["tiny random checkpoint"] = encoder_shape(MilcoEncoder.from_pretrained(tiny, device="cpu"))
    return figures


def realism_table(figures: dict[str, dict]) -> str:
    """``realism``'s figures as a table, one row per encoder."""
    return markdown_table(
        ["vectors", f"query L1 in heaviest {QUERY_HEAD}", f"document L1 in heaviest {DOCUMENT_HEAD}",
         "query L1 in LexEcho", "document L1 in LexEcho", "terms per query / document"],
        [[name, f"{f['query_top16_share']:.2f}", f"{f['document_top64_share']:.2f}", f"{f['query_lexecho_share']:.2f}",
          f"{f['document_lexecho_share']:.2f}", f"{f['query_terms']:.0f} / {f['document_terms']:.0f}"]
         for name, f in figures.items()])
