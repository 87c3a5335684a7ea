"""SEISMIC's key scheme: the English view keyed by wordpiece id, LexEcho by piece name.

OpenSearch's SEISMIC ``sparse_vector`` fields take non-negative integer keys, and neural-search
3.6 folds them into a 16-bit short on its approximate path: ids from 32,768 fail and ids from
65,536 collide with smaller ones. English wordpiece ids (30,522 in the released vocabulary)
fit as they are. LexEcho is never searched approximately (the first phase is the English view,
which carries most of a query's weight), so it stays a ``rank_features`` field keyed by the
percent-escaped piece, as in ``NamedKeys``, and the rescore scores it exactly.
"""

from __future__ import annotations

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.index.fields import EN_FIELD, EN_VIEW, M_FIELD, InvalidVectorError, key_tables, stored_terms

ID_LIMIT = 32_768  # English ids below this pass neural-search 3.6's 16-bit fold unchanged


class EnglishIdKeys:
    """``milco_en`` keyed by wordpiece id (SEISMIC); ``milco_m`` keyed by percent-escaped piece (rank_features)."""

    fields = (EN_FIELD, M_FIELD)
    codec = "English: wordpiece id; LexEcho: percent-escaped piece (milco_os.feature_names)"

    def key(self, view: str, term_id: int, vocabulary: TermVocabulary) -> tuple[str, str]:
        if view == EN_VIEW:
            return EN_FIELD, english_key(term_id)
        return M_FIELD, key_tables(vocabulary)[1][term_id]

    def document_fields(self, vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
        fields: dict[str, dict[str, float]] = {}
        if len(vector.en_ids):
            fields[EN_FIELD] = dict(zip(map(english_key, vector.en_ids.tolist()), vector.en_weights.tolist()))
        if len(vector.m_ids):
            m_keys = key_tables(vocabulary)[1]
            fields[M_FIELD] = dict(zip(map(m_keys.__getitem__, vector.m_ids.tolist()), vector.m_weights.tolist()))
        return fields

    def stored_terms(self, source: dict, vocabulary: TermVocabulary) -> dict[str, float]:
        terms = {vocabulary.en_name(int(key)): float(weight) for key, weight in (source.get(EN_FIELD) or {}).items()}
        terms.update(stored_terms({M_FIELD: source.get(M_FIELD)}))
        return terms


def english_key(term_id: int) -> str:
    """The key of English term ``term_id``; an id SEISMIC would fold is refused naming the field."""
    if term_id >= ID_LIMIT:
        raise InvalidVectorError(EN_FIELD, f"term id {term_id} is beyond the {ID_LIMIT:,} ids SEISMIC keys hold")
    return str(term_id)
