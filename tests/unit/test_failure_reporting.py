"""Pure logic behind failure reporting: URL redaction, client errors to exit codes, vector checks, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from opensearchpy.exceptions import (
    AuthenticationException,
    AuthorizationException,
    ConnectionError as TransportConnectionError,
    SSLError,
    TransportError,
)
from rich.console import Console

from milco_os.cluster import cluster_error, redact_url
from milco_os.commands.job_files import NoticePrinter
from milco_os.errors import ClusterUnavailableError, CredentialsError, TlsError
from milco_os.index.fields import InvalidVectorError, check_vector
from milco_os.pipeline.checkpoints import CheckpointMismatchError, FileCheckpoint
from milco_os.pipeline.ingest import BatchReport
from milco_os.pipeline.sources import JsonlSource
from milco_os.encoding.sparse import SparseVector, TermVocabulary


@pytest.mark.parametrize(("url", "shown"), [
    ("https://ops:s3cret@search.example:9200/prefix", "https://search.example:9200/prefix"),
    ("https://ops@search.example", "https://search.example"),
    ("http://127.0.0.1:9200", "http://127.0.0.1:9200"),
])
def test_redact_url_drops_userinfo_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("exc", "kind", "code", "fragment"), [
    (SSLError("N/A", "certificate verify failed", OSError("certificate verify failed")), TlsError, 10,
     "TLS verification of https://h:1 failed: certificate verify failed"),
    (TransportConnectionError("N/A", "refused", OSError("Connection refused")), ClusterUnavailableError, 4,
     "cannot reach the cluster at https://h:1: Connection refused"),
    (AuthenticationException(401, "Unauthorized", {}), CredentialsError, 9,
     "refused the credentials (HTTP 401, user 'ops')"),
    (AuthorizationException(403, "security_exception", {"error": {"reason": "no permissions for [x]"}}),
     CredentialsError, 9, "denied the request (HTTP 403): no permissions for [x]"),
])
def test_client_errors_become_one_message_with_an_exit_code(exc, kind, code, fragment) -> None:
    error = cluster_error(exc, "https://h:1", "ops")
    assert isinstance(error, kind) and error.exit_code == code
    assert fragment in str(error)


def test_other_http_errors_name_the_status_and_reason() -> None:
    error = cluster_error(TransportError(400, "x", {"error": {"reason": "bad query"}}), "http://h:1")
    assert error.exit_code == 1 and "answered HTTP 400: bad query" in str(error)


VOCABULARY = TermVocabulary(("a", "b", "c"), ("x", "y"))


def vector(en_weights: list[float], en_ids: list[int] | None = None) -> SparseVector:
    ids = np.array(en_ids if en_ids is not None else list(range(len(en_weights))), np.int32)
    return SparseVector(ids, np.array(en_weights, np.float32), np.array([1], np.int32), np.array([0.5], np.float32))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.5, 0.0])
def test_a_weight_that_is_not_positive_finite_is_refused_naming_the_field(bad: float) -> None:
    with pytest.raises(InvalidVectorError, match="field 'milco_en': 1 weight") as caught:
        check_vector(vector([1.0, bad]), VOCABULARY)
    assert caught.value.field == "milco_en"


def test_an_unknown_term_id_is_refused_and_valid_vectors_pass() -> None:
    with pytest.raises(InvalidVectorError, match="term id 7 is outside the vocabulary of 3"):
        check_vector(vector([1.0], [7]), VOCABULARY)
    check_vector(vector([1.0, 0.25]), VOCABULARY)


def test_checkpoint_resumes_after_its_line_and_refuses_another_file(tmp_path: Path) -> None:
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": 1}\n{"id": 2}\n{"id": 3}\n')
    path = tmp_path / "run.checkpoint.json"
    checkpoint = FileCheckpoint.load_or_new(path, source, "idx", resume=False)
    checkpoint.advance(BatchReport(2, read=2, written=2, skipped=0, no_text=0, failed=0, conflicts=0), path)
    resumed = FileCheckpoint.load_or_new(path, source, "idx", resume=True)
    assert [d.doc_id for d in JsonlSource(source, start_after=resumed.line)] == ["3"]
    assert FileCheckpoint.load_or_new(path, source, "idx", resume=False).line == 0
    with pytest.raises(CheckpointMismatchError, match="into 'idx'"):
        FileCheckpoint.load_or_new(path, source, "other", resume=True)
    source.write_text('{"id": 1}\n{"id": 2}\n{"id": 3}\n{"id": 4}\n')
    with pytest.raises(CheckpointMismatchError):
        FileCheckpoint.load_or_new(path, source, "idx", resume=True)
    assert json.loads(path.read_text())["line"] == 2


def test_notices_stop_at_the_limit_and_say_how_many_were_not_shown() -> None:
    console = Console(record=True, width=200)
    printer = NoticePrinter(console, limit=2)
    for n in range(5):
        printer(f"document {n}: refused")
    printer.finish("dead.jsonl")
    lines = console.export_text().splitlines()
    assert lines == ["document 0: refused", "document 1: refused", "... and 3 more: see dead.jsonl"]
