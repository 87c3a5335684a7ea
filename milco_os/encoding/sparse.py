"""Sparse MILCO vectors: term ids and weights of the English view and the LexEcho source view."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EN_PREFIX = "e_"
M_PREFIX = "m_"


@dataclass(frozen=True)
class TermVocabulary:
    """Piece names of both views, to name terms ``e_<wordpiece>`` and ``m_<piece>``."""

    en_pieces: tuple[str, ...]
    m_pieces: tuple[str, ...]

    @classmethod
    def from_files(cls, en_vocab: Path, m_pieces: list[str]) -> TermVocabulary:
        return cls(tuple(en_vocab.read_text(encoding="utf-8").splitlines()), tuple(m_pieces))

    def en_name(self, term_id: int) -> str:
        return EN_PREFIX + self.en_pieces[term_id]

    def m_name(self, term_id: int) -> str:
        return M_PREFIX + self.m_pieces[term_id]


@dataclass(frozen=True, eq=False)
class SparseVector:
    """One text's MILCO vector: per view, int32 term ids and float32 weights, heaviest first."""

    en_ids: np.ndarray
    en_weights: np.ndarray
    m_ids: np.ndarray
    m_weights: np.ndarray

    @classmethod
    def empty(cls) -> SparseVector:
        ids, weights = np.zeros(0, np.int32), np.zeros(0, np.float32)
        return cls(ids, weights, ids.copy(), weights.copy())

    def __len__(self) -> int:
        return len(self.en_ids) + len(self.m_ids)

    def terms(self, vocabulary: TermVocabulary) -> dict[str, float]:
        """Term name -> weight over both views, heaviest first (ties: English view, then lower id)."""
        named = [(vocabulary.en_name(int(i)), float(w), 0, int(i)) for i, w in zip(self.en_ids, self.en_weights)]
        named += [(vocabulary.m_name(int(i)), float(w), 1, int(i)) for i, w in zip(self.m_ids, self.m_weights)]
        named.sort(key=lambda item: (-item[1], item[2], item[3]))
        return {name: weight for name, weight, _, _ in named}

    def dot(self, other: SparseVector) -> float:
        """The MILCO relevance score: dot product over both views."""
        return _sparse_dot(self.en_ids, self.en_weights, other.en_ids, other.en_weights) + _sparse_dot(
            self.m_ids, self.m_weights, other.m_ids, other.m_weights
        )


def _sparse_dot(ids_a: np.ndarray, weights_a: np.ndarray, ids_b: np.ndarray, weights_b: np.ndarray) -> float:
    common, index_a, index_b = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    if not len(common):
        return 0.0
    return float(np.dot(weights_a[index_a].astype(np.float64), weights_b[index_b].astype(np.float64)))
