"""How a MILCO vector lives in a document: by default, one field per view keyed by piece name.

Two fields rather than one field with prefixed keys: a query can leave out or
re-weight the LexEcho view by field, each view's keys stay short, and the two
vocabularies can never collide whatever their pieces look like. ``TermKeys`` is the
contract a key scheme fulfils (``NamedKeys`` here; English term ids in ``seismic_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from milco_os.index.feature_names import decode_key, encode_key
from milco_os.encoding.sparse import EN_PREFIX, M_PREFIX, SparseVector, TermVocabulary

EN_FIELD = "milco_en"
M_FIELD = "milco_m"
META_FIELD = "milco_meta"
PASSAGES_PATH = "milco_passages"
VIEW_FIELDS = ((EN_FIELD, EN_PREFIX), (M_FIELD, M_PREFIX))
EN_VIEW = "en"
M_VIEW = "m"


@dataclass(frozen=True)
class QueryTerm:
    """One query term: its field and key in the index, its weight, and its readable name."""

    field: str
    key: str
    weight: float
    name: str


class TermKeys(Protocol):
    """A key scheme: where each term of a vector lives in a document (its field and key), and back."""

    fields: ClassVar[tuple[str, ...]]
    codec: ClassVar[str]

    def key(self, view: str, term_id: int, vocabulary: TermVocabulary) -> tuple[str, str]:
        """The field and key of term ``term_id`` of ``view`` (``en`` or ``m``)."""

    def document_fields(self, vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
        """The vector fields of a document (empty fields are left out)."""

    def stored_terms(self, source: dict, vocabulary: TermVocabulary) -> dict[str, float]:
        """Named terms (``e_...``, ``m_...``) of a stored document."""


class NamedKeys:
    """``milco_en`` / ``milco_m`` keyed by the percent-escaped piece (``feature_names``): readable as stored."""

    fields = (EN_FIELD, M_FIELD)
    codec = "percent-escaped piece (milco_os.feature_names)"

    def key(self, view: str, term_id: int, vocabulary: TermVocabulary) -> tuple[str, str]:
        if view == EN_VIEW:
            return EN_FIELD, encode_key(vocabulary.en_pieces[term_id])
        return M_FIELD, encode_key(vocabulary.m_pieces[term_id])

    def document_fields(self, vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
        return vector_fields(vector, vocabulary)

    def stored_terms(self, source: dict, vocabulary: TermVocabulary) -> dict[str, float]:
        return stored_terms(source)


class KeyTables:
    """Every piece's key, escaped once per vocabulary: escaping each term of each document again cost more
    than the rest of writing it. Tables are held for the last few vocabularies (one per encoder in practice)."""

    def __init__(self, capacity: int = 4) -> None:
        self.capacity = capacity
        self.tables: list[tuple[TermVocabulary, tuple[str, ...], tuple[str, ...]]] = []

    def __call__(self, vocabulary: TermVocabulary) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The English and LexEcho keys of ``vocabulary``, indexed by term id."""
        for known, en_keys, m_keys in self.tables:
            if known is vocabulary:
                return en_keys, m_keys
        en_keys, m_keys = tuple(map(encode_key, vocabulary.en_pieces)), tuple(map(encode_key, vocabulary.m_pieces))
        self.tables = [(vocabulary, en_keys, m_keys), *self.tables][:self.capacity]
        return en_keys, m_keys


key_tables = KeyTables()


def vector_fields(vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
    """The ``milco_en`` / ``milco_m`` objects of a document (empty views are left out)."""
    fields: dict[str, dict[str, float]] = {}
    en_keys, m_keys = key_tables(vocabulary)
    views = ((EN_FIELD, vector.en_ids, vector.en_weights, en_keys), (M_FIELD, vector.m_ids, vector.m_weights, m_keys))
    for field, ids, weights, keys in views:
        if len(ids):
            fields[field] = dict(zip(map(keys.__getitem__, ids.tolist()), weights.tolist()))
    return fields


class InvalidVectorError(ValueError):
    """A vector that cannot be stored: a weight that is not a positive finite number, or an unknown term id."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field '{field}': {message}")
        self.field = field


def check_vector(vector: SparseVector, vocabulary: TermVocabulary) -> None:
    """Raise InvalidVectorError naming the view's field when the vector cannot go into ``rank_features``."""
    views = ((EN_FIELD, vector.en_ids, vector.en_weights, len(vocabulary.en_pieces)),
             (M_FIELD, vector.m_ids, vector.m_weights, len(vocabulary.m_pieces)))
    for field, ids, weights, size in views:
        if len(ids) != len(weights):
            raise InvalidVectorError(field, f"{len(ids)} term ids but {len(weights)} weights")
        bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))
        if len(bad):
            raise InvalidVectorError(field, f"{len(bad)} weight(s) are not positive finite numbers "
                                            f"(first: {float(weights[bad[0]])!r} for term id {int(ids[bad[0]])})")
        unknown = np.flatnonzero((ids < 0) | (ids >= size))
        if len(unknown):
            raise InvalidVectorError(field, f"term id {int(ids[unknown[0]])} is outside the vocabulary of {size}")


def stored_terms(source: dict) -> dict[str, float]:
    """Named terms (``e_...``, ``m_...``) of a stored document, decoded from its keys."""
    terms: dict[str, float] = {}
    for field, prefix in VIEW_FIELDS:
        for key, weight in (source.get(field) or {}).items():
            terms[prefix + decode_key(key)] = float(weight)
    return terms
