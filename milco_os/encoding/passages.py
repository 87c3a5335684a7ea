"""Splitting long documents into token windows, each encoded as its own passage."""

from __future__ import annotations

from dataclasses import dataclass

SPECIAL_TOKENS_PER_TEXT = 2  # <s> ... </s>


@dataclass(frozen=True)
class Passage:
    text: str
    start_token: int


def split_passages(tokenizer, text: str, *, max_tokens: int = 512, overlap: int = 0) -> list[Passage]:
    """Windows of at most ``max_tokens`` tokens (special tokens included), ``overlap`` tokens shared."""
    window = max_tokens - SPECIAL_TOKENS_PER_TEXT
    if window < 1 or not 0 <= overlap < window:
        raise ValueError(f"passages need max_tokens > {SPECIAL_TOKENS_PER_TEXT} and 0 <= overlap < "
                         f"max_tokens - {SPECIAL_TOKENS_PER_TEXT} (got {max_tokens}, {overlap})")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if not offsets:
        return [Passage(text, 0)]
    passages = []
    for start in range(0, len(offsets), window - overlap):
        end = min(start + window, len(offsets))
        passages.append(Passage(text[offsets[start][0] : offsets[end - 1][1]], start))
        if end == len(offsets):
            break
    return passages
