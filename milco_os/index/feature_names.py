"""Term pieces <-> ``rank_features`` keys that both OpenSearch and Elasticsearch accept.

Elasticsearch rejects '.' in ``rank_features`` keys, and OpenSearch's ``rank_feature``
query splits its field path on '.', so a key must never contain one. Keys are the
piece itself with a small percent-escape: '%', '.', whitespace and control characters
become ``%XX`` (UTF-8 bytes, upper-case hex). Every other character, including '#',
'▁' and any script, stays readable, so an index can be inspected by eye.

The empty piece (no vocabulary has one, but the codec is total) becomes ``%``, a key no
other piece can produce. Each view has its own field, so views never collide.
"""

from __future__ import annotations

import re
import unicodedata

ESCAPE = "%"
EMPTY_KEY = ESCAPE
ESCAPED_SEQUENCE = re.compile(r"(?:%[0-9A-F]{2})+")


def needs_escape(character: str) -> bool:
    return character in (ESCAPE, ".") or character.isspace() or unicodedata.category(character) in ("Cc", "Cs")


def encode_key(piece: str) -> str:
    """The ``rank_features`` key for a vocabulary piece: never empty, no '.', reversible."""
    if piece == "":
        return EMPTY_KEY
    return "".join(
        "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogatepass"))
        if needs_escape(character) else character
        for character in piece
    )


def decode_key(key: str) -> str:
    """The vocabulary piece behind a key made by :func:`encode_key`."""
    if key == EMPTY_KEY:
        return ""
    return ESCAPED_SEQUENCE.sub(
        lambda match: bytes.fromhex(match.group(0).replace(ESCAPE, "")).decode("utf-8", "surrogatepass"), key
    )
