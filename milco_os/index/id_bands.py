"""Term ids as keys, with the LexEcho view spread over 32,768-wide bands: no id ever needs more than 15 bits.

OpenSearch's SEISMIC ``sparse_vector`` fields take non-negative integer keys, but neural-search
3.6 folds them into a 16-bit short on its approximate path: ids from 32,768 fail and ids from
65,536 collide with smaller ones. English wordpiece ids (< 30,522) fit as they are. LexEcho
ids (< 250,002) go to field ``milco_m_b{id // 32768}`` under key ``id % 32768``: each band
field holds ids 0-32,767 only, and a term's band and key give back its id exactly.
"""

from __future__ import annotations

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.index.fields import EN_FIELD, EN_VIEW, M_FIELD, InvalidVectorError

BAND_WIDTH = 32_768
BANDS = 8  # 8 x 32,768 = 262,144 ids: the released multilingual vocabulary has 250,002
BAND_FIELDS = tuple(f"{M_FIELD}_b{band}" for band in range(BANDS))


def band_field(term_id: int) -> tuple[str, str]:
    """The band field and key of LexEcho term ``term_id``."""
    band, key = divmod(term_id, BAND_WIDTH)
    if band >= BANDS:
        raise InvalidVectorError(M_FIELD, f"term id {term_id} is beyond the {BANDS * BAND_WIDTH:,} ids of "
                                          f"{BANDS} bands")
    return BAND_FIELDS[band], str(key)


class BandedIdKeys:
    """``milco_en`` keyed by wordpiece id; ``milco_m_b0`` ... ``milco_m_b7`` keyed by the id within the band."""

    fields = (EN_FIELD, *BAND_FIELDS)
    codec = f"term id; LexEcho id = band x {BAND_WIDTH} + key (milco_os.index.id_bands)"

    def key(self, view: str, term_id: int, vocabulary: TermVocabulary) -> tuple[str, str]:
        return (EN_FIELD, str(term_id)) if view == EN_VIEW else band_field(term_id)

    def document_fields(self, vector: SparseVector, vocabulary: TermVocabulary) -> dict[str, dict[str, float]]:
        fields: dict[str, dict[str, float]] = {}
        if len(vector.en_ids):
            fields[EN_FIELD] = dict(zip(map(str, vector.en_ids.tolist()), vector.en_weights.tolist()))
        for term_id, weight in zip(vector.m_ids.tolist(), vector.m_weights.tolist()):
            field, key = band_field(term_id)
            fields.setdefault(field, {})[key] = weight
        return fields

    def stored_terms(self, source: dict, vocabulary: TermVocabulary) -> dict[str, float]:
        terms = {vocabulary.en_name(int(key)): float(weight) for key, weight in (source.get(EN_FIELD) or {}).items()}
        for band, field in enumerate(BAND_FIELDS):
            for key, weight in (source.get(field) or {}).items():
                terms[vocabulary.m_name(band * BAND_WIDTH + int(key))] = float(weight)
        return terms
