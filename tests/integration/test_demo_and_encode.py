"""The encode command and the end-to-end demo path against a real node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from milco_os.model import MilcoEncoder
from tests.commands import run_cli

pytestmark = pytest.mark.integration



def test_encode_command_prints_named_terms_in_input_order(tiny_checkpoint: Path) -> None:
    texts = ["Berlin ist die Hauptstadt", "東京タワー", ""]
    result = run_cli("encode", "--model", str(tiny_checkpoint), "--prune", "topk:5", *texts, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == texts
    expected = MilcoEncoder.from_pretrained(tiny_checkpoint).encode(texts, prune="topk:5")
    encoder = MilcoEncoder.from_pretrained(tiny_checkpoint)
    for line, vector in zip(lines, expected):
        assert list(line["terms"]) == list(vector.terms(encoder.vocabulary))
        assert list(line["terms"].values()) == sorted(line["terms"].values(), reverse=True)
    assert lines[2]["terms"] == {}


def test_encode_command_refuses_a_bad_prune_spec(tiny_checkpoint: Path) -> None:
    result = run_cli("encode", "--model", str(tiny_checkpoint), "--prune", "topk:0", "x", timeout=120)
    assert result.returncode == 2 and "topk:0 out of range" in result.stderr


def test_demo_runs_end_to_end() -> None:
    result = run_cli("demo", "--query", "Hauptstadt", "--query", "東京", timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "Indexed 600 documents" in result.stdout
    assert "query: Hauptstadt" in result.stdout and "query: 東京" in result.stdout
    assert "rankings are meaningless" in result.stdout
    assert "Triton serves the encoder" in result.stdout and "tritonserver stopped." in result.stdout
    assert "OpenSearch node stopped." in result.stdout
