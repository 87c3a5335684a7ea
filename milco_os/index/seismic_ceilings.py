"""SEISMIC's quantisation ceilings chosen from the encoder's own weights on a sample of texts.

SEISMIC stores each English weight as one byte over [0, ceiling]: a ceiling far above the
weights wastes resolution, one below them clips. The ceiling is the largest English weight
seen in the sample (documents for ingest, the same texts encoded as queries for search)
plus 25 % headroom for texts the sample missed, rounded up to two significant digits.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from milco_os.encoding.contract import QUERY_MAX_LENGTH, SparseEncoder
from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector
from milco_os.index.seismic_parameters import Ceilings, SeismicIndex

HEADROOM = 1.25
SAMPLE_TEXTS = 256


def ceiling_for(largest_weight: float) -> float:
    """``largest_weight`` plus headroom, rounded up to two significant digits."""
    value = largest_weight * HEADROOM
    scale = 10 ** (math.floor(math.log10(value)) - 1)
    return math.ceil(value / scale - 1e-6) * scale  # float32 weights: 1.6 x 1.25 is 2.0, not 2.1


def largest_english_weight(vectors: Sequence[SparseVector]) -> float:
    """The largest English weight of ``vectors`` (0 when they have none)."""
    return max((float(v.en_weights.max()) for v in vectors if len(v.en_weights)), default=0.0)


def measured_ceilings(encoder: SparseEncoder, texts: Sequence[str], parameters: SeismicIndex,
                      prune: PruneSpec | str = "none") -> SeismicIndex:
    """``parameters`` with the English ceilings measured on up to ``SAMPLE_TEXTS`` texts spread over ``texts``
    (as given when the sample has no English weights)."""
    texts = [text for text in texts if text.strip()]
    texts = texts[::-(-len(texts) // SAMPLE_TEXTS)] if texts else texts
    if not texts:
        return parameters
    document = largest_english_weight(encoder.encode_documents(texts, prune=prune))
    query = largest_english_weight(encoder.encode_queries(texts, max_length=QUERY_MAX_LENGTH))
    if document <= 0 or query <= 0:
        return parameters
    return replace(parameters, ceilings=Ceilings(round(ceiling_for(document), 6), round(ceiling_for(query), 6)))
