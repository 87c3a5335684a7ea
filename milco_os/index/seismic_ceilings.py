"""SEISMIC's quantisation ceilings chosen from the encoder's own weights on a sample of texts.

SEISMIC stores each weight as one byte over [0, ceiling]: a ceiling far above the weights
wastes resolution, one below them clips. The ceiling is the largest weight seen in the
sample (documents for ingest, the same texts encoded as queries for search) plus 10 %
headroom, rounded up to two significant digits.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from milco_os.encoding.contract import SparseEncoder
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector
from milco_os.index.vector_fields import SeismicIndex

HEADROOM = 1.1
SAMPLE_TEXTS = 256
QUERY_MAX_LENGTH = 64


def ceiling_for(largest_weight: float) -> float:
    """``largest_weight`` plus headroom, rounded up to two significant digits."""
    value = largest_weight * HEADROOM
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale - 1e-9) * scale


def largest_weight(vectors: Sequence[SparseVector]) -> float:
    return max((float(weights.max()) for vector in vectors for weights in (vector.en_weights, vector.m_weights)
                if len(weights)), default=0.0)


def measured_ceilings(encoder: SparseEncoder, texts: Sequence[str], parameters: SeismicIndex,
                      prune: PruneSpec | str = "none") -> SeismicIndex:
    """``parameters`` with both ceilings measured on ``texts`` (as given when the sample has no weights)."""
    texts = [text for text in texts if text.strip()][:SAMPLE_TEXTS]
    if not texts:
        return parameters
    documents = largest_weight(encoder.encode_documents(texts, prune=prune))
    queries = largest_weight(encoder.encode_queries(texts, max_length=QUERY_MAX_LENGTH))
    if documents <= 0 or queries <= 0:
        return parameters
    return replace(parameters, quantization_ceiling_ingest=round(ceiling_for(documents), 6),
                   quantization_ceiling_search=round(ceiling_for(queries), 6))
