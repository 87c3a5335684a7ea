"""TritonEncoder over several scripted KServe v2 endpoints: work shared, a dead server set aside, all down."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import Iterator

import pytest

from milco_os import __version__
from milco_os.encoding.sparse import TermVocabulary
from milco_os.encoding.triton_client import TritonEncoder, TritonRequestError, TritonUnavailableError, parse_urls
from tests.unit.scripted_transport import DROP, TritonStub
from tests.unit.test_triton_backoff import TEXTS, VOCABULARY, assert_vectors, toy_vectors
from tests.waiting import wait_for


def fleet(*stubs: TritonStub, unavailable_timeout_s: float = 5.0) -> TritonEncoder:
    return TritonEncoder(",".join(stub.url for stub in stubs), protocol="http", timeout_s=5.0,
                         unavailable_timeout_s=unavailable_timeout_s, backoff_s=0.05, texts_per_request=1)


@pytest.fixture
def two_stubs() -> Iterator[tuple[TritonStub, TritonStub]]:
    with ExitStack() as stack:
        stubs = tuple(stack.enter_context(TritonStub("milco", toy_vectors, VOCABULARY)) for _ in range(2))
        yield stubs


def test_urls_are_read_from_a_comma_separated_list_or_a_sequence() -> None:
    assert parse_urls(" a:8001, b:8001 ,,a:8001") == ("a:8001", "b:8001")
    assert parse_urls(["a:1", "b:2"]) == ("a:1", "b:2")
    with pytest.raises(ValueError, match="at least one Triton server"):
        parse_urls(" , ")


def test_idle_servers_share_the_requests(two_stubs: tuple[TritonStub, TritonStub]) -> None:
    first, second = two_stubs
    for stub in two_stubs:
        stub.listen()
    with fleet(first, second) as milco:
        before = [stub.count("infer") for stub in two_stubs]
        for text in TEXTS * 2:
            assert_vectors(milco.encode([text]), [text])
    served = [stub.count("infer") - was for stub, was in zip(two_stubs, before)]
    assert served[0] > 0 and served[1] > 0, f"requests per server: {served}"
    # Each non-blank text once, plus the vocabulary check of the server first used after the first.
    assert sum(served) == sum(1 for text in TEXTS * 2 if text.strip()) + 1


def test_a_server_that_drops_every_request_is_set_aside_and_the_other_serves(
        two_stubs: tuple[TritonStub, TritonStub], caplog: pytest.LogCaptureFixture) -> None:
    broken, healthy = two_stubs
    for stub in two_stubs:
        stub.listen()
    with fleet(broken, healthy) as milco:
        broken.fail("infer", iter(lambda: DROP, None))
        with caplog.at_level(logging.WARNING, logger="milco_os.encoding.triton_client"):
            texts = [f"text number {i}" for i in range(40)]
            assert_vectors(milco.encode(texts), texts)
    assert healthy.count("infer") >= 40
    assert broken.count("infer") < 10, "a server set aside is tried again only after a backoff"
    assert any(f"Triton at {broken.url} set aside" in message for message in caplog.messages)


def test_a_server_down_at_start_is_used_once_it_comes_up(two_stubs: tuple[TritonStub, TritonStub]) -> None:
    late, early = two_stubs
    early.listen()
    with fleet(late, early) as milco:
        late.listen()

        def late_served() -> bool:
            assert_vectors(milco.encode(TEXTS), TEXTS)
            return late.count("infer") > 0

        wait_for(late_served, timeout=5, interval=0.02, what="the server that came up late to get a request",
                 detail=lambda: f"requests to the early one: {early.count('infer')}")


def test_every_server_down_gives_up_after_the_timeout_naming_them_all(
        two_stubs: tuple[TritonStub, TritonStub]) -> None:
    first, second = two_stubs
    for stub in two_stubs:
        stub.listen()
    with fleet(first, second, unavailable_timeout_s=0.5) as milco:
        for stub in two_stubs:
            stub.fail("infer", iter(lambda: DROP, None))
        started = time.monotonic()
        with pytest.raises(TritonUnavailableError, match=rf"Every Triton server \({first.url}, {second.url}, http\)"):
            milco.encode(["the cat sat"])
        assert 0.3 <= time.monotonic() - started < 3.0


def test_a_server_with_another_vocabulary_is_refused_before_its_vectors_are_used() -> None:
    other = TermVocabulary(("[PAD]", "dog"), ("▁le",))
    with TritonStub("milco", toy_vectors, VOCABULARY) as first, TritonStub("milco", toy_vectors, other) as second:
        first.listen()
        second.listen()
        with fleet(first, second) as milco, \
                pytest.raises(TritonRequestError, match=rf"Triton at {second.url} serves .* other vocabularies"):
            for _ in range(4):
                milco.encode(["the cat sat"])


def test_a_server_whose_model_another_milco_os_exported_is_named_in_a_warning(
        two_stubs: tuple[TritonStub, TritonStub], caplog: pytest.LogCaptureFixture) -> None:
    current, older = two_stubs
    current.exported_with, older.exported_with = __version__, "0.0.1"
    for stub in two_stubs:
        stub.listen()
    with caplog.at_level(logging.WARNING, logger="milco_os.encoding.triton_client"):
        with fleet(current, older) as milco:
            for text in TEXTS * 2:  # enough requests for both servers to be used
                assert_vectors(milco.encode([text]), [text])
    assert older.count("infer") > 0
    warnings = [message for message in caplog.messages if "exported with" in message]
    assert len(warnings) == 1 and older.url in warnings[0] and "milco-os 0.0.1" in warnings[0], caplog.messages
    assert f"this is milco-os {__version__}" in warnings[0]
