"""The rank_features key codec: valid on OpenSearch and Elasticsearch, never empty, reversible."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given
from hypothesis import strategies as st

from milco_os.index.feature_names import decode_key, encode_key
from milco_os.model.tiny import build_tokenizer

BERT_VOCAB = (Path(__file__).resolve().parents[2] / "milco_os" / "model" / "data" /
              "bert-base-uncased-vocab.txt").read_text(encoding="utf-8").splitlines()
SENTENCEPIECE = list(build_tokenizer(3000).get_vocab())
SPECIALS = ["[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<unk>", "<mask>", "[unused0]"]
PUNCTUATION = [".", "..", "...", "▁.", "##.", "%", "%2E", "%%", " ", "\t", "\n", "\x00", "a.b", "e_x", "m_y"]
REAL_SHAPES = st.sampled_from(BERT_VOCAB + SENTENCEPIECE + SPECIALS + PUNCTUATION)
PIECES = st.one_of(REAL_SHAPES, st.text(), st.text(alphabet=st.sampled_from(".%▁# \u3000\ud800x")))


def assert_valid_key(key: str) -> None:
    assert key, "keys are never empty"
    assert "." not in key, "Elasticsearch rejects dots; OpenSearch splits field paths on them"
    assert not any(character.isspace() for character in key)
    key.encode("utf-8")  # no lone surrogates: the key is valid JSON text


@given(PIECES)
@example("")
@example("\ud800")
def test_keys_are_valid_and_round_trip(piece: str) -> None:
    key = encode_key(piece)
    assert_valid_key(key)
    assert decode_key(key) == piece


@given(PIECES, PIECES)
def test_distinct_pieces_get_distinct_keys(a: str, b: str) -> None:
    assert (encode_key(a) == encode_key(b)) == (a == b)


def test_every_real_vocabulary_piece_is_unique_after_encoding() -> None:
    for vocabulary in (BERT_VOCAB, SENTENCEPIECE):
        keys = [encode_key(piece) for piece in vocabulary]
        assert len(set(keys)) == len(set(vocabulary))
        for key in keys:
            assert_valid_key(key)


def test_ordinary_pieces_stay_readable() -> None:
    assert encode_key("##ing") == "##ing"
    assert encode_key("▁Berlin") == "▁Berlin"
    assert encode_key("東京") == "東京"
    assert encode_key("e.g.") == "e%2Eg%2E"
    assert encode_key("100%") == "100%25"
