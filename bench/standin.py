"""MILCO-like vectors without the model: a deterministic stand-in, used only to measure costs at scale.

Nothing here says anything about retrieval quality. It reproduces what drives the cost of
storing and searching MILCO vectors:

- **Terms per text** at the paper's pruning levels (MIRACL, Table 13: P0 about 570 English
  terms per document, P50 286, P80 115, P90 58, P95 29), a LexEcho view of the text's own
  pieces, queries of about 32 English and 5-10 LexEcho terms.
- **Document frequencies**: English expansion terms are drawn from a Zipf law over the
  30,522 English pieces, source pieces from a Zipf law over the 250,002 multilingual pieces,
  so a few terms have posting lists over most of the collection and most are rare.
- **Weights** in the real model's ranges: English ``log1p(relu)`` values up to about 4, the
  text's own terms (and rare ones) heaviest, frequent expansion terms light.

A text is a list of source pieces written as words (``p1234``), so BM25 runs on the same
collection. The stand-in "encodes" a text the way the model does, as a pure function of the
text: its pieces give the LexEcho view, each piece's fixed English translation plus
expansion terms drawn from a generator seeded by the text give the English view. Documents
expand to ``DOCUMENT_EN_TERMS`` English terms before pruning; queries to ``QUERY_EN_TERMS``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

from milco_os.encoding.contract import SparseEncoder, check_texts
from milco_os.encoding.pruning import PruneSpec, Rule
from milco_os.encoding.sparse import SparseVector, TermVocabulary

EN_VOCAB = 30_522
M_VOCAB = 250_002
DOCUMENT_EN_TERMS = 570
QUERY_EN_TERMS = 32
EN_ZIPF = 1.0
M_ZIPF = 1.05


@dataclass(frozen=True)
class Level:
    """A pruning level of the paper: English and LexEcho terms kept per document."""

    name: str
    en_terms: int
    m_terms: int

    @property
    def prune(self) -> str:
        return f"e=topk:{self.en_terms},m=topk:{self.m_terms}"


# English terms per level from the paper (Table 13); LexEcho kept in about the same proportion of the text's pieces.
LEVELS = {level.name: level for level in (Level("P0", 570, 64), Level("P50", 286, 50), Level("P80", 115, 25),
                                          Level("P90", 58, 12), Level("P95", 29, 6))}


class ZipfDraws:
    """Ids drawn with probability about proportional to 1 / rank^exponent (the continuous law's inverse CDF);
    ranks shuffled over ids once (seeded)."""

    def __init__(self, size: int, exponent: float, seed: int) -> None:
        self.size, self.exponent = size, exponent
        self.id_of_rank = np.random.default_rng(seed).permutation(size).astype(np.int32)
        rank_of_id = np.argsort(self.id_of_rank)
        # Rarer ids weigh more, like an idf: 0.25 for the most frequent id, 1 for the rarest.
        self.rarity = (0.25 + 0.75 * np.log1p(rank_of_id) / np.log(size)).astype(np.float32)

    def ids(self, uniforms: np.ndarray) -> np.ndarray:
        """Ids for uniform draws in [0, 1)."""
        if self.exponent == 1.0:
            ranks = np.exp(uniforms * np.log(self.size + 1.0)) - 1.0
        else:
            power = 1.0 - self.exponent
            ranks = (1.0 + uniforms * ((self.size + 1.0) ** power - 1.0)) ** (1.0 / power) - 1.0
        return self.id_of_rank[np.minimum(ranks.astype(np.int64), self.size - 1)]


def uniforms(key: int, stream: int, count: int) -> np.ndarray:
    """``count`` uniform draws in [0, 1), a pure function of ``(key, stream)`` (splitmix64; no generator state)."""
    with np.errstate(over="ignore"):
        x = np.arange(count, dtype=np.uint64) + np.uint64(((key & 0xFFFFFFFFFF) << 20) ^ (stream << 12))
        x = x * np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


class StandInModel:
    """The collection's generator: source pieces of documents and queries, their translations, and the vectors."""

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed
        self.en = ZipfDraws(EN_VOCAB, EN_ZIPF, seed)
        self.m = ZipfDraws(M_VOCAB, M_ZIPF, seed + 1)
        self.translation = self.en.ids(uniforms(seed, 1, M_VOCAB))
        self.is_translation = np.zeros(EN_VOCAB, dtype=bool)  # scratch: marks a text's translations

    @cached_property
    def vocabulary(self) -> TermVocabulary:
        return TermVocabulary(tuple(f"w{i}" for i in range(EN_VOCAB)), tuple(f"p{i}" for i in range(M_VOCAB)))

    def document_pieces(self, number: int) -> np.ndarray:
        """The source pieces of document ``number``: 40-120 words."""
        draws = uniforms(number, 2 + 8 * self.seed, 121)
        return self.m.ids(draws[1 : 41 + int(draws[0] * 81)])

    def document_text(self, number: int) -> str:
        return " ".join(f"p{piece}" for piece in self.document_pieces(number).tolist())

    def query_target(self, number: int, documents: int) -> int:
        """The document query ``number`` is about, one of the first ``documents``."""
        return int(uniforms(number, 4 + 8 * self.seed, 1)[0] * documents)

    def query_text(self, number: int, documents: int) -> str:
        """A query about document ``query_target``: 5-10 of its pieces, rarer ones likelier."""
        rng = np.random.default_rng((self.seed, number))
        pieces = np.unique(self.document_pieces(self.query_target(number, documents)))
        rarity = self.m.rarity[pieces] ** 4
        chosen = rng.choice(pieces, size=min(len(pieces), int(rng.integers(5, 11))), replace=False,
                            p=rarity / rarity.sum())
        return " ".join(f"p{piece}" for piece in chosen.tolist())

    def vector(self, text: str, en_terms: int) -> SparseVector:
        """The text's vector, a pure function of the text: its pieces (LexEcho), their translations and
        ``en_terms`` English terms in all (expansion drawn from draws keyed by the text)."""
        if not text.strip():
            return SparseVector.empty()
        key = zlib.crc32(text.encode("utf-8"))
        pieces, counts = np.unique(np.array(text.replace("p", "").split(), dtype=np.int32), return_counts=True)
        draws = uniforms(key, 3 + 8 * self.seed, len(pieces) + 3 * en_terms)
        m_weights = (0.6 + 0.4 * np.log1p(counts)) * self.m.rarity[pieces] * (1.5 + 1.5 * draws[: len(pieces)])
        translated = self.translation[pieces]
        candidates = np.concatenate([translated, self.en.ids(draws[len(pieces) : len(pieces) + 2 * en_terms])])
        en_ids = np.unique(candidates)
        self.is_translation[translated] = True
        own = self.is_translation[en_ids]
        self.is_translation[translated] = False
        # The text's own translations first, then expansion terms in id order (a pure function) up to en_terms.
        en_ids = np.concatenate([en_ids[own], en_ids[~own]])[:en_terms]
        noise = draws[len(pieces) + 2 * en_terms :][: len(en_ids)]
        base = np.where(np.arange(len(en_ids)) < own.sum(), 1.6 + 1.4 * noise, np.exp(-0.9 + 0.6 * (3 * noise - 1.5)))
        en_weights = np.minimum(base * (0.4 + 0.8 * self.en.rarity[en_ids]), 4.2)
        return heaviest_first(en_ids, en_weights, pieces, m_weights)


def heaviest_first(en_ids: np.ndarray, en_weights: np.ndarray, m_ids: np.ndarray, m_weights: np.ndarray,
                   ) -> SparseVector:
    en_order, m_order = np.argsort(-en_weights), np.argsort(-m_weights)
    return SparseVector(en_ids[en_order].astype(np.int32), en_weights[en_order].astype(np.float32),
                        m_ids[m_order].astype(np.int32), m_weights[m_order].astype(np.float32))


def kept(rules: tuple[Rule, ...], count: int) -> int:
    """How many of ``count`` heaviest-first terms ``topk`` rules keep (the stand-in knows no other rule)."""
    for rule in rules:
        if rule.kind != "topk":
            raise ValueError(f"the stand-in encoder prunes with topk rules only, not {rule}")
        count = min(count, int(rule.value))
    return count


def pruned(vector: SparseVector, prune: str | PruneSpec | None) -> SparseVector:
    spec = PruneSpec.parse(prune)
    if spec.joint:
        raise ValueError("the stand-in encoder prunes each view on its own: give e=topk:N,m=topk:M")
    en, m = kept(spec.rules_for("e"), len(vector.en_ids)), kept(spec.rules_for("m"), len(vector.m_ids))
    return SparseVector(vector.en_ids[:en], vector.en_weights[:en], vector.m_ids[:m], vector.m_weights[:m])


class StandInEncoder(SparseEncoder):
    """The stand-in behind the product's encoder contract: documents expand to ``DOCUMENT_EN_TERMS``
    English terms, queries to ``QUERY_EN_TERMS``, then ``prune`` applies."""

    name = "milco-standin"

    def __init__(self, model: StandInModel) -> None:
        self.model = model
        self.vocabulary = model.vocabulary

    def encode(self, texts: Sequence[str], *, max_length: int | None = None, prune: str | PruneSpec | None = None,
               echo: bool = True) -> list[SparseVector]:
        return self.encode_documents(texts, max_length=max_length, prune=prune)

    def encode_documents(self, texts: Sequence[str], *, max_length: int | None = None,
                         prune: str | PruneSpec | None = None) -> list[SparseVector]:
        return [pruned(self.model.vector(text, DOCUMENT_EN_TERMS), prune) for text in check_texts(texts)]

    def encode_queries(self, texts: Sequence[str], *, max_length: int | None = None,
                       prune: str | PruneSpec | None = None, echo: bool = True) -> list[SparseVector]:
        vectors = [pruned(self.model.vector(text, QUERY_EN_TERMS), prune) for text in check_texts(texts)]
        return vectors if echo else [SparseVector(v.en_ids, v.en_weights, v.m_ids[:0], v.m_weights[:0])
                                     for v in vectors]
