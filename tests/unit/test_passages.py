from __future__ import annotations

import pytest

from milco_os.model import MilcoEncoder
from milco_os.encoding.passages import split_passages

TEXT = " ".join(["Berlin ist die Hauptstadt und die größte Stadt Deutschlands."] * 6)


def test_windows_cover_the_text_within_the_token_limit(tiny_encoder: MilcoEncoder) -> None:
    tokenizer = tiny_encoder.tokenizer
    passages = split_passages(tokenizer, TEXT, max_tokens=20)
    total = len(tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    assert len(passages) == -(-total // 18)
    assert [p.start_token for p in passages] == list(range(0, total, 18))
    for passage in passages:
        assert len(tokenizer(passage.text)["input_ids"]) <= 20 + 1  # re-tokenizing a cut may shift one piece
        assert passage.text in TEXT
    assert passages[0].text.startswith("Berlin") and TEXT.endswith(passages[-1].text)


def test_overlap_shares_tokens(tiny_encoder: MilcoEncoder) -> None:
    passages = split_passages(tiny_encoder.tokenizer, TEXT, max_tokens=20, overlap=6)
    assert [p.start_token for p in passages][:3] == [0, 12, 24]


def test_short_text_is_one_passage_and_bad_limits_are_refused(tiny_encoder: MilcoEncoder) -> None:
    assert [p.text for p in split_passages(tiny_encoder.tokenizer, "kurz")] == ["kurz"]
    with pytest.raises(ValueError):
        split_passages(tiny_encoder.tokenizer, TEXT, max_tokens=2)
    with pytest.raises(ValueError):
        split_passages(tiny_encoder.tokenizer, TEXT, max_tokens=20, overlap=18)
