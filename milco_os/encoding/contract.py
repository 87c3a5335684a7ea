"""The encoding contract: what ingest, reindex, search and eval need of an encoder, in-process or remote.

An encoder has a ``name`` and a ``fingerprint`` (both recorded in ``milco_meta``), a ``vocabulary`` naming its term
ids, an optional ``tokenizer`` (a Hugging Face tokenizer, needed to split passages
locally; ``None`` for remote encoders), and two entry points: documents and queries.
MILCO encodes both with the same network, so both default to ``encode``; an encoder
whose query side differs overrides ``encode_queries``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

from milco_os.encoding.pruning import PruneSpec
from milco_os.encoding.sparse import SparseVector, TermVocabulary

QUERY_MAX_LENGTH = 64  # tokens a query is encoded from unless told otherwise (queries are short)


class SparseEncoder(ABC):
    """Texts -> one SparseVector each, in input order; empty or blank texts give empty vectors."""

    name: str
    vocabulary: TermVocabulary
    tokenizer: Any = None
    fingerprint: str | None = None  # the checkpoint's digest (encoding/fingerprint), None when unknown

    @abstractmethod
    def encode(self, texts: Sequence[str], *, max_length: int | None = None, prune: str | PruneSpec | None = None,
               echo: bool = True) -> list[SparseVector]:
        """Encode ``texts`` (at most ``max_length`` tokens each), pruned by ``prune``, LexEcho view unless not ``echo``."""

    def encode_documents(self, texts: Sequence[str], *, max_length: int | None = None,
                         prune: str | PruneSpec | None = None) -> list[SparseVector]:
        """Document vectors (both views) for indexing."""
        return self.encode(texts, max_length=max_length, prune=prune)

    def encode_queries(self, texts: Sequence[str], *, max_length: int | None = None,
                       prune: str | PruneSpec | None = None, echo: bool = True) -> list[SparseVector]:
        """Query vectors for searching."""
        return self.encode(texts, max_length=max_length, prune=prune, echo=echo)


def check_texts(texts: Sequence[object]) -> list[str]:
    """The texts as a list, with a TypeError naming the position of the first non-string."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    checked = list(texts)
    for position, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"text at position {position} is {type(text).__name__}, not str")
    return checked
