"""TritonEncoder over HTTP against a scripted KServe v2 endpoint: readiness, retries, give-up and refusals."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from milco_os.encoding.sparse import SparseVector, TermVocabulary
from milco_os.encoding.triton_client import TritonEncoder, TritonRequestError, TritonUnavailableError
from tests.unit.scripted_transport import DROP, Reply, TritonStub

VOCABULARY = TermVocabulary(("[PAD]", "the", "cat"), ("▁le", "▁chat"))
TEXTS = ["the cat sat", "", "a much longer text with many more words in it", "  ", "hi"]


def toy_vectors(texts: list[str]) -> list[SparseVector]:
    """A vector per text that depends on its words, with rows of different lengths (so padding matters)."""
    vectors = []
    for text in texts:
        words = text.split()
        vectors.append(SparseVector(np.arange(len(words), dtype=np.int32) * 7,
                                    np.array([len(word) for word in words], dtype=np.float32),
                                    np.array([len(text)], dtype=np.int32), np.array([0.25], dtype=np.float32)))
    return vectors


def assert_vectors(got: list[SparseVector], texts: list[str]) -> None:
    """``got`` holds the toy model's vector for each non-blank text and an empty one for each blank text."""
    assert len(got) == len(texts)
    for vector, text in zip(got, texts):
        want = toy_vectors([text])[0] if text.strip() else SparseVector.empty()
        for field in ("en_ids", "en_weights", "m_ids", "m_weights"):
            np.testing.assert_array_equal(getattr(vector, field), getattr(want, field), err_msg=f"{field} of {text!r}")


def encoder(stub: TritonStub, unavailable_timeout_s: float = 5.0) -> TritonEncoder:
    return TritonEncoder(stub.url, protocol="http", timeout_s=5.0, unavailable_timeout_s=unavailable_timeout_s,
                         backoff_s=0.02, texts_per_request=2)


@pytest.fixture
def stub() -> Iterator[TritonStub]:
    with TritonStub("milco", toy_vectors, VOCABULARY) as serving:
        serving.listen()
        yield serving


@pytest.fixture
def milco(stub: TritonStub) -> Iterator[TritonEncoder]:
    """An encoder connected to ``stub``, past its readiness check and vocabulary request."""
    with encoder(stub) as connected:
        yield connected


def test_vectors_come_back_in_input_order_across_requests(stub: TritonStub, milco: TritonEncoder) -> None:
    assert milco.vocabulary == VOCABULARY
    before = stub.count("infer")

    assert_vectors(milco.encode(TEXTS), TEXTS)
    assert stub.count("infer") - before == 2  # three non-blank texts, two per request


def test_a_server_that_starts_late_is_waited_for() -> None:
    with TritonStub("milco", toy_vectors, VOCABULARY) as late:
        opening = threading.Timer(0.3, late.listen)
        started = time.monotonic()
        opening.start()
        try:
            with encoder(late) as milco:
                assert time.monotonic() - started >= 0.3
                assert milco.vocabulary == VOCABULARY
                assert_vectors(milco.encode(TEXTS), TEXTS)
        finally:
            opening.join()


def test_503_answers_are_retried_until_the_server_serves(stub: TritonStub, milco: TritonEncoder) -> None:
    before = stub.count("infer")
    stub.fail("infer", [Reply(503, {"error": "Server not ready"})] * 3)

    assert_vectors(milco.encode(["the cat sat"]), ["the cat sat"])
    assert stub.count("infer") - before == 4


def test_dropped_connections_are_retried_until_the_server_serves(stub: TritonStub, milco: TritonEncoder) -> None:
    before = stub.count("infer")
    stub.fail("infer", [DROP, DROP])

    assert_vectors(milco.encode(["the cat sat"]), ["the cat sat"])
    assert stub.count("infer") - before == 3


def test_a_server_that_never_comes_gives_up_in_bounded_time() -> None:
    with TritonStub("milco", toy_vectors, VOCABULARY) as refusing:
        started = time.monotonic()
        with pytest.raises(TritonUnavailableError, match=rf"Triton at {refusing.url} \(http\) is unreachable"):
            encoder(refusing, unavailable_timeout_s=0.5)
        assert 0.1 <= time.monotonic() - started < 2.0
        assert refusing.requests == []


def test_a_bad_request_fails_at_once_without_retries(stub: TritonStub, milco: TritonEncoder) -> None:
    before = stub.count("infer")
    stub.fail("infer", [Reply(400, {"error": "unexpected shape for input 'TEXT' for model 'milco'"})] * 5)

    started = time.monotonic()
    with pytest.raises(TritonRequestError, match=rf"Triton at {stub.url} refused .*unexpected shape for input"):
        milco.encode(["the cat sat"])
    assert time.monotonic() - started < 1.0
    assert stub.count("infer") - before == 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors through /proc")
def test_repeated_encodes_do_not_pile_up_open_connections(milco: TritonEncoder) -> None:
    milco.encode(TEXTS)
    opened = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        milco.encode(TEXTS)
    assert len(os.listdir("/proc/self/fd")) - opened < 10


def test_a_loading_model_is_waited_for() -> None:
    with TritonStub("milco", toy_vectors, VOCABULARY) as loading:
        loading.repository = [{"name": "milco", "version": "1", "state": "LOADING"}]
        loading.fail("ready", [Reply(400, {"error": "not ready"})] * 3)
        loading.listen()
        with encoder(loading) as milco:
            assert milco.vocabulary == VOCABULARY
        assert loading.count("ready") == 4 and loading.count("index") == 3


@pytest.mark.parametrize(("repository", "error", "message"), [
    ([{"name": "other", "version": "1", "state": "READY"}], TritonRequestError, "serves no model named 'milco'"),
    ([{"name": "milco", "version": "1", "state": "UNAVAILABLE", "reason": "ImportError: no module named x"}],
     TritonUnavailableError, "model 'milco' is unavailable: ImportError: no module named x"),
])
def test_an_unknown_or_broken_model_fails_at_once(repository: list[dict], error: type, message: str) -> None:
    with TritonStub("milco", toy_vectors, VOCABULARY) as broken:
        broken.repository = repository
        broken.fail("ready", iter(lambda: Reply(400, {"error": "not ready"}), None))
        broken.listen()
        started = time.monotonic()
        with pytest.raises(error, match=message):
            encoder(broken, unavailable_timeout_s=30)
        assert time.monotonic() - started < 2.0 and broken.count("ready") == 1


def test_a_model_that_never_gets_ready_gives_up_after_the_timeout() -> None:
    with TritonStub("milco", toy_vectors, VOCABULARY) as stuck:
        stuck.repository = [{"name": "milco", "version": "1", "state": "LOADING"}]
        stuck.fail("ready", iter(lambda: Reply(400, {"error": "not ready"}), None))
        stuck.listen()
        with pytest.raises(TritonUnavailableError, match="was not ready within 0.3 s \\(state: LOADING\\)"):
            encoder(stuck, unavailable_timeout_s=0.3)
