"""The encoder against an independent reference: plain torch ops on the released state dict."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional

from milco_os.model import MilcoEncoder

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "東京は日本の首都であり、多くの人々が住んでいます。",
    "القاهرة هي عاصمة مصر",
    "नई दिल्ली भारत की राजधानी है",
    "🚀🔍 launch & search!!! ... ??? «»",
    "Berlin und 北京 und Москва: mixed scripts, 3.14 e-mail@example.org",
    "a",
]


def layer_norm(x: torch.Tensor, state: dict, prefix: str, eps: float) -> torch.Tensor:
    return functional.layer_norm(x, x.shape[-1:], state[prefix + ".weight"], state[prefix + ".bias"], eps)


def linear(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    return x @ state[prefix + ".weight"].T + state[prefix + ".bias"]


def reference_encode(state: dict, input_ids: list[int], en_vocab: int, m_vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """MILCO for one unpadded text, written from the paper and released code's definitions."""
    ids = torch.tensor(input_ids)
    positions = torch.arange(len(input_ids)) + 2  # XLM-R: padding_idx (1) + 1
    p = "m_model."
    h = (state[p + "embeddings.word_embeddings.weight"][ids]
         + state[p + "embeddings.position_embeddings.weight"][positions]
         + state[p + "embeddings.token_type_embeddings.weight"][0])
    h = layer_norm(h, state, p + "embeddings.LayerNorm", 1e-5)
    layer = 0
    while f"{p}encoder.layer.{layer}.attention.self.query.weight" in state:
        lp = f"{p}encoder.layer.{layer}."
        heads = h.shape[-1] // 64
        q, k, v = (linear(h, state, lp + f"attention.self.{n}").view(-1, heads, 64).transpose(0, 1)
                   for n in ("query", "key", "value"))
        attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(64), dim=-1)
        context = (attention @ v).transpose(0, 1).reshape(h.shape)
        h = layer_norm(linear(context, state, lp + "attention.output.dense") + h, state,
                       lp + "attention.output.LayerNorm", 1e-5)
        inner = functional.gelu(linear(h, state, lp + "intermediate.dense"))
        h = layer_norm(linear(inner, state, lp + "output.dense") + h, state, lp + "output.LayerNorm", 1e-5)
        layer += 1
    z = functional.gelu(linear(h, state, "projector"))
    t = layer_norm(functional.gelu(linear(z, state, "mlm_head.predictions.transform.dense")), state,
                   "mlm_head.predictions.transform.LayerNorm", 1e-12)
    logits = t @ state["mlm_head.predictions.decoder.weight"].T + state["mlm_head.predictions.decoder.bias"]
    english = torch.log1p(torch.relu(logits.max(dim=0).values))
    echo = torch.relu(h @ state["echo.weight"].T + state["echo.bias"]).squeeze(-1) * state["scale"]
    source = torch.zeros(m_vocab)
    for token, weight in zip(input_ids, echo):
        source[token] += weight
    assert english.shape[0] == en_vocab
    return english.numpy(), source.numpy()


def dense(ids: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    vector = np.zeros(size, np.float32)
    vector[ids] = weights
    return vector


@pytest.fixture(scope="module")
def state(tiny_checkpoint: Path) -> dict:
    return torch.load(tiny_checkpoint / "pytorch_model.bin", weights_only=True)


def test_encoder_matches_the_reference_in_fp32(tiny_encoder: MilcoEncoder, state: dict) -> None:
    en_vocab, m_vocab = tiny_encoder.network.en_vocab_size, tiny_encoder.network.m_vocab_size
    vectors = tiny_encoder.encode(TEXTS, prune="none", batch_size=4)
    for text, vector in zip(TEXTS, vectors):
        ids = tiny_encoder.tokenizer(text)["input_ids"]
        english, source = reference_encode(state, ids, en_vocab, m_vocab)
        np.testing.assert_allclose(dense(vector.en_ids, vector.en_weights, en_vocab), english, atol=1e-5, rtol=0)
        np.testing.assert_allclose(dense(vector.m_ids, vector.m_weights, m_vocab), source, atol=1e-5, rtol=0)
        assert set(vector.m_ids.tolist()) <= set(ids)
        assert len(vector.en_ids) == int((english > 0).sum())


def as_dict(ids: np.ndarray, weights: np.ndarray) -> dict[int, float]:
    return dict(zip(ids.tolist(), weights.tolist()))


def assert_same_vector(a, b, atol: float) -> None:
    """Same terms in each view, weights within ``atol`` (order of near-ties may differ)."""
    for ids_a, w_a, ids_b, w_b in ((a.en_ids, a.en_weights, b.en_ids, b.en_weights),
                                   (a.m_ids, a.m_weights, b.m_ids, b.m_weights)):
        da, db = as_dict(ids_a, w_a), as_dict(ids_b, w_b)
        assert da.keys() == db.keys()
        assert max((abs(da[k] - db[k]) for k in da), default=0.0) <= atol


def test_result_does_not_depend_on_the_batch(tiny_encoder: MilcoEncoder) -> None:
    together = tiny_encoder.encode(TEXTS, batch_size=len(TEXTS))
    for text, batched in zip(TEXTS, together):
        assert_same_vector(tiny_encoder.encode([text])[0], batched, atol=1e-5)


def test_chunked_logits_equal_unchunked(tiny_checkpoint: Path) -> None:
    whole = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu")
    chunked = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu", logits_budget_bytes=1)
    for a, b in zip(whole.encode(TEXTS), chunked.encode(TEXTS)):
        assert_same_vector(a, b, atol=1e-6)


def test_results_come_back_in_input_order(tiny_encoder: MilcoEncoder) -> None:
    shuffled = TEXTS[::-1] + TEXTS[:3]
    vectors = tiny_encoder.encode(shuffled, batch_size=3)
    for vector, text in zip(vectors, shuffled):
        assert_same_vector(vector, tiny_encoder.encode([text])[0], atol=1e-5)


def test_blank_texts_give_empty_vectors(tiny_encoder: MilcoEncoder) -> None:
    vectors = tiny_encoder.encode(["", "   \n\t", "hello"])
    assert len(vectors[0]) == 0 and len(vectors[1]) == 0 and len(vectors[2]) > 0


def test_non_string_input_names_its_position(tiny_encoder: MilcoEncoder) -> None:
    with pytest.raises(TypeError, match="text at position 2 is int"):
        tiny_encoder.encode(["a", "b", 3])
    with pytest.raises(TypeError, match="not a single string"):
        tiny_encoder.encode("just one string")


def test_long_texts_are_truncated_and_counted(tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture) -> None:
    encoder = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu")
    long_text = "Search engines rank documents. " * 100
    with caplog.at_level("WARNING"):
        vectors = encoder.encode([long_text, long_text, "short"], max_length=32)
    assert encoder.truncated_count == 2
    assert sum("truncated" in record.message for record in caplog.records) == 1
    ids = encoder.tokenizer(long_text, truncation=True, max_length=32)["input_ids"]
    assert len(ids) == 32
    assert set(vectors[0].m_ids.tolist()) <= set(ids)


def test_echo_can_be_switched_off(tiny_encoder: MilcoEncoder) -> None:
    vector = tiny_encoder.encode(["Berlin ist die Hauptstadt"], echo=False)[0]
    assert len(vector.m_ids) == 0 and len(vector.en_ids) > 0


def test_terms_are_named_by_view(tiny_encoder: MilcoEncoder) -> None:
    terms = tiny_encoder.encode(["東京は日本の首都"], prune="topk:20")[0].terms(tiny_encoder.vocabulary)
    assert len(terms) == 20
    assert all(name.startswith(("e_", "m_")) for name in terms)
    assert list(terms.values()) == sorted(terms.values(), reverse=True)


@pytest.mark.parametrize(("batch_size", "budget"), [(1, 10_000), (4, 10_000), (32, 100), (32, 35)])
def test_batches_cover_every_text_once_within_the_limits(batch_size: int, budget: int) -> None:
    from milco_os.model.encoder import plan_batches

    lengths = [5, 40, 12, 33, 7, 7, 90, 1, 18, 60]
    batches = plan_batches(lengths, batch_size, budget)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    order = [i for batch in batches for i in batch]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)
    for batch in batches:
        assert len(batch) <= batch_size
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= budget


def test_unknown_precision_is_refused(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        MilcoEncoder.from_pretrained(tiny_checkpoint, precision="int8")


def test_serving_precision_is_held_in_the_weights(tiny_checkpoint: Path, tiny_encoder: MilcoEncoder) -> None:
    assert tiny_encoder.precision == "fp32"
    assert tiny_encoder.network.m_model.config._attn_implementation == "sdpa"
    half = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu", precision="bf16")
    assert {p.dtype for p in half.network.parameters()} == {torch.bfloat16}
    en_vocab = tiny_encoder.network.en_vocab_size
    for a, b in zip(half.encode(TEXTS), tiny_encoder.encode(TEXTS)):
        exact = dense(b.en_ids, b.en_weights, en_vocab)
        assert np.linalg.norm(dense(a.en_ids, a.en_weights, en_vocab) - exact) <= 0.05 * np.linalg.norm(exact)
        assert a.en_weights.dtype == np.float32


def test_tf32_on_a_cpu_is_plain_fp32(tiny_checkpoint: Path, tiny_encoder: MilcoEncoder) -> None:
    tf32 = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu", precision="tf32")
    for a, b in zip(tf32.encode(TEXTS), tiny_encoder.encode(TEXTS)):
        assert_same_vector(a, b, atol=0.0)


def test_calibrated_checkpoints_give_about_the_asked_english_terms(tmp_path: Path) -> None:
    from milco_os.model.tiny import MULTILINGUAL_SAMPLE, make_tiny_checkpoint

    texts = [" ".join(MULTILINGUAL_SAMPLE[i:] + MULTILINGUAL_SAMPLE[:i]) for i in range(6)]
    sizes = {}
    for asked in (None, 40):
        directory = make_tiny_checkpoint(tmp_path / str(asked), seed=7, en_terms_per_text=asked)
        vectors = MilcoEncoder.from_pretrained(directory, device="cpu").encode(texts)
        sizes[asked] = np.mean([len(v.en_ids) for v in vectors])
    assert 15 <= sizes[40] <= 100 and sizes[None] > 300, sizes
