"""The milco-os Triton wire format: a request's vectors as padded id/weight tensors per view, and back.

Shared by the python-backend model (server side) and ``TritonEncoder`` (client side); numpy only.
"""

from __future__ import annotations

import numpy as np

from milco_os.encoding.sparse import SparseVector

VECTOR_OUTPUTS = ("EN_IDS", "EN_WEIGHTS", "EN_COUNT", "M_IDS", "M_WEIGHTS", "M_COUNT")
VOCAB_OUTPUTS = ("EN_VOCAB", "M_VOCAB")


def padded(rows: list[np.ndarray], dtype: type, fill: float) -> np.ndarray:
    width = max((len(row) for row in rows), default=0)
    out = np.full((len(rows), width), fill, dtype=dtype)
    for index, row in enumerate(rows):
        out[index, : len(row)] = row
    return out


def vector_arrays(vectors: list[SparseVector]) -> dict[str, np.ndarray]:
    """The response tensors for a request's vectors (ids padded with -1, weights with 0)."""
    return {
        "EN_IDS": padded([v.en_ids for v in vectors], np.int32, -1),
        "EN_WEIGHTS": padded([v.en_weights for v in vectors], np.float32, 0),
        "EN_COUNT": np.array([[len(v.en_ids)] for v in vectors], dtype=np.int32),
        "M_IDS": padded([v.m_ids for v in vectors], np.int32, -1),
        "M_WEIGHTS": padded([v.m_weights for v in vectors], np.float32, 0),
        "M_COUNT": np.array([[len(v.m_ids)] for v in vectors], dtype=np.int32),
    }


def vectors_from_arrays(arrays: dict[str, np.ndarray]) -> list[SparseVector]:
    """The inverse of :func:`vector_arrays`, on the client side."""
    vectors = []
    for row, (en_count, m_count) in enumerate(zip(arrays["EN_COUNT"].reshape(-1), arrays["M_COUNT"].reshape(-1))):
        vectors.append(SparseVector(
            arrays["EN_IDS"][row, :en_count].astype(np.int32), arrays["EN_WEIGHTS"][row, :en_count].astype(np.float32),
            arrays["M_IDS"][row, :m_count].astype(np.int32), arrays["M_WEIGHTS"][row, :m_count].astype(np.float32),
        ))
    return vectors
