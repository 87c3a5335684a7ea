"""The stand-in of ``bench/scale.py``: MILCO-like vectors that are a pure function of the text, at the paper's sizes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from standin import (  # noqa: E402
    DOCUMENT_EN_TERMS,
    EN_VOCAB,
    LEVELS,
    M_VOCAB,
    QUERY_EN_TERMS,
    StandInEncoder,
    StandInModel,
    uniforms,
)

from milco_os.index.fields import check_vector  # noqa: E402


@pytest.fixture(scope="module")
def encoder() -> StandInEncoder:
    return StandInEncoder(StandInModel(seed=1))


def test_a_vector_depends_on_its_text_alone_not_on_its_batch(encoder: StandInEncoder) -> None:
    texts = [encoder.model.document_text(n) for n in range(6)]
    alone = encoder.encode_documents(texts[3:4])[0]
    batched = encoder.encode_documents(texts)[3]
    assert alone.en_ids.tolist() == batched.en_ids.tolist()
    assert np.array_equal(alone.en_weights, batched.en_weights)
    assert alone.m_ids.tolist() == batched.m_ids.tolist()
    other = StandInEncoder(StandInModel(seed=2)).encode_documents(texts[3:4])[0]
    assert other.en_ids.tolist() != alone.en_ids.tolist()


def test_documents_have_the_papers_term_counts_at_every_level(encoder: StandInEncoder) -> None:
    texts = [encoder.model.document_text(n) for n in range(50)]
    full = encoder.encode_documents(texts)
    assert all(len(v.en_ids) == DOCUMENT_EN_TERMS for v in full)
    assert all(len(set(v.en_ids.tolist())) == len(v.en_ids) for v in full)
    for level in LEVELS.values():
        pruned = encoder.encode_documents(texts, prune=level.prune)
        assert all(len(v.en_ids) == level.en_terms for v in pruned), level
        assert all(len(v.m_ids) == min(level.m_terms, len(f.m_ids)) for v, f in zip(pruned, full)), level
        # Pruning keeps the heaviest terms of the full vector.
        assert all(v.en_ids.tolist() == f.en_ids[: level.en_terms].tolist() for v, f in zip(pruned, full))


def test_weights_are_in_the_models_ranges_and_storable(encoder: StandInEncoder) -> None:
    vectors = encoder.encode_documents([encoder.model.document_text(n) for n in range(200)])
    weights = np.concatenate([v.en_weights for v in vectors])
    assert 3.0 < weights.max() <= 4.2 and 0.2 < float(np.median(weights)) < 1.0
    for vector in vectors:
        check_vector(vector, encoder.vocabulary)
        assert np.all(np.diff(vector.en_weights) <= 0) and np.all(np.diff(vector.m_weights) <= 0)
    assert len(encoder.vocabulary.en_pieces) == EN_VOCAB and len(encoder.vocabulary.m_pieces) == M_VOCAB


def test_document_frequencies_are_zipfian(encoder: StandInEncoder) -> None:
    vectors = encoder.encode_documents([encoder.model.document_text(n) for n in range(400)], prune=LEVELS["P80"].prune)
    ids, counts = np.unique(np.concatenate([v.en_ids for v in vectors]), return_counts=True)
    shares = np.sort(counts)[::-1] / len(vectors)
    assert shares[0] > 0.8  # a head term in most documents
    assert np.median(counts) <= 3  # most terms rare


def test_queries_are_rarer_pieces_of_the_document_they_are_about(encoder: StandInEncoder) -> None:
    model = encoder.model
    for number in range(20):
        text = model.query_text(number, documents=1000)
        source = {f"p{piece}" for piece in model.document_pieces(model.query_target(number, documents=1000))}
        assert set(text.split()) <= source
        query = encoder.encode_queries([text])[0]
        assert len(query.en_ids) == QUERY_EN_TERMS and 5 <= len(query.m_ids) <= 10
    without_echo = encoder.encode_queries([model.query_text(0, 1000)], echo=False)[0]
    assert len(without_echo.m_ids) == 0


def test_only_per_view_topk_pruning_is_understood(encoder: StandInEncoder) -> None:
    with pytest.raises(ValueError, match="each view"):
        encoder.encode_documents(["p1 p2"], prune="topk:5")
    with pytest.raises(ValueError, match="topk rules only"):
        encoder.encode_documents(["p1 p2"], prune="e=mass:0.5")
    assert len(encoder.encode_documents(["  "])[0]) == 0


@settings(max_examples=50, deadline=None)
@given(key=st.integers(0, 2**32 - 1), stream=st.integers(0, 64), count=st.integers(1, 300))
def test_uniforms_are_a_pure_function_in_the_unit_interval(key: int, stream: int, count: int) -> None:
    draws = uniforms(key, stream, count)
    assert draws.shape == (count,) and np.all((draws >= 0) & (draws < 1))
    assert np.array_equal(draws, uniforms(key, stream, count + 5)[:count])
