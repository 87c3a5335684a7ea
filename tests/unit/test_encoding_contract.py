"""The encoding contract: both encoders implement it, and the remote side stays free of torch."""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator

import numpy as np
import pytest

from milco_os.encoding.contract import SparseEncoder, check_texts
from milco_os.encoding.sparse import SparseVector, TermVocabulary
from tests.unit.scripted_transport import TritonStub

CONTRACT_TEXTS = ["Berlin ist die Hauptstadt", "", "東京タワー", "   ", "the cat sat"]


@pytest.mark.parametrize("module", ["milco_os.encoding.triton_client", "milco_os.encoding.pruning",
                                    "milco_os.pipeline.ingest", "milco_os.search"])
def test_remote_encoding_ingest_and_search_import_no_torch(module: str) -> None:
    probe = f"import sys, {module}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=120).returncode == 0, f"{module} imports torch"


@pytest.fixture(params=["in-process", "triton"])
def implementation(request: pytest.FixtureRequest) -> Iterator[SparseEncoder]:
    """Each encoder: the in-process one on the tiny checkpoint, and the remote one with a stub serving it."""
    from milco_os.encoding.triton_client import TritonEncoder

    local = request.getfixturevalue("tiny_encoder")
    if request.param == "in-process":
        yield local
        return
    with TritonStub("milco", local.encode, local.vocabulary) as stub:
        stub.listen()
        with TritonEncoder(stub.url, protocol="http", timeout_s=30.0, unavailable_timeout_s=5.0,
                           backoff_s=0.02) as remote:
            yield remote


def same_vectors(got: list[SparseVector], want: list[SparseVector]) -> bool:
    fields = ("en_ids", "en_weights", "m_ids", "m_weights")
    return len(got) == len(want) and all(np.array_equal(getattr(a, field), getattr(b, field))
                                         for a, b in zip(got, want) for field in fields)


def test_each_encoder_does_what_the_contract_promises(implementation: SparseEncoder) -> None:
    """What ingest, reindex, search and eval rely on, asked of each implementation at run time."""
    assert isinstance(implementation.name, str) and implementation.name
    vocabulary = implementation.vocabulary
    assert isinstance(vocabulary, TermVocabulary) and vocabulary.en_pieces and vocabulary.m_pieces

    vectors = implementation.encode(CONTRACT_TEXTS)
    assert [type(vector) for vector in vectors] == [SparseVector] * len(CONTRACT_TEXTS)
    assert [len(vector) > 0 for vector in vectors] == [bool(text.strip()) for text in CONTRACT_TEXTS], \
        "a vector per text, empty exactly for the blank ones"
    for vector in vectors:
        for ids, weights, pieces in ((vector.en_ids, vector.en_weights, vocabulary.en_pieces),
                                     (vector.m_ids, vector.m_weights, vocabulary.m_pieces)):
            assert ids.dtype == np.int32 and weights.dtype == np.float32 and ids.shape == weights.shape
            assert ((ids >= 0) & (ids < len(pieces))).all(), "every term id is named by the vocabulary"

    assert same_vectors(implementation.encode_documents(CONTRACT_TEXTS), vectors)
    assert same_vectors(implementation.encode_queries(CONTRACT_TEXTS), vectors)
    assert same_vectors(implementation.encode_queries(CONTRACT_TEXTS, echo=False),
                        implementation.encode(CONTRACT_TEXTS, echo=False))
    with pytest.raises(TypeError, match="not a single string"):
        implementation.encode("a single string")


def test_text_checks_name_the_position_of_a_non_string() -> None:
    assert check_texts(("a", "")) == ["a", ""]
    with pytest.raises(TypeError, match="position 1 is int"):
        check_texts(["a", 3])
    with pytest.raises(TypeError, match="not a single string"):
        check_texts("a")
