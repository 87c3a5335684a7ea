"""How a MILCO vector lives in a document: one ``rank_features`` field per view.

Two fields rather than one field with prefixed keys: a query can leave out or
re-weight the LexEcho view by field, each view's keys stay short, and the two
vocabularies can never collide whatever their pieces look like.
"""

from __future__ import annotations

from milco_os.feature_names import decode_key, encode_key
from milco_os.sparse import EN_PREFIX, M_PREFIX, SparseVector, TermVocabulary

EN_FIELD = "milco_en"
M_FIELD = "milco_m"
META_FIELD = "milco_meta"
VIEW_FIELDS = ((EN_FIELD, EN_PREFIX), (M_FIELD, M_PREFIX))


def vector_fields(vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
    """The ``milco_en`` / ``milco_m`` objects of a document (empty views are left out)."""
    fields: dict[str, dict[str, float]] = {}
    views = ((EN_FIELD, vector.en_ids, vector.en_weights, vocabulary.en_pieces),
             (M_FIELD, vector.m_ids, vector.m_weights, vocabulary.m_pieces))
    for field, ids, weights, pieces in views:
        if len(ids):
            fields[field] = {encode_key(pieces[i]): w for i, w in zip(ids.tolist(), weights.tolist())}
    return fields


def stored_terms(source: dict) -> dict[str, float]:
    """Named terms (``e_...``, ``m_...``) of a stored document, decoded from its keys."""
    terms: dict[str, float] = {}
    for field, prefix in VIEW_FIELDS:
        for key, weight in (source.get(field) or {}).items():
            terms[prefix + decode_key(key)] = float(weight)
    return terms
