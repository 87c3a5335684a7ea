"""Managed clusters: every command through an endpoint that checks AWS Signature V4 as Amazon OpenSearch Service
does (a local proxy in front of a real node, tests/sigv4_proxy.py); Elastic Cloud ids."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest
from opensearchpy import OpenSearch

from tests.commands import run_cli
from tests.sigv4_proxy import SigV4Proxy

pytestmark = pytest.mark.integration

KEY, SECRET, REGION = "AKIDMILCOOSTEST", "milco-os-test-secret-key", "eu-west-1"


def aws_environment(secret: str | None = SECRET) -> dict[str, str]:
    """Credentials for botocore's chain from the environment only (no profile files, no instance metadata)."""
    environment = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                   "AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": REGION,
                   "AWS_ACCESS_KEY_ID": KEY if secret else "", "AWS_SECRET_ACCESS_KEY": secret or ""}
    return environment


@pytest.fixture(scope="module")
def signed(opensearch_url: str) -> Iterator[SigV4Proxy]:
    with SigV4Proxy(opensearch_url, KEY, SECRET, REGION, "es") as proxy:
        yield proxy


def milco_os(proxy: SigV4Proxy, *args: str, secret: str | None = SECRET):
    return run_cli(*args[:1], "--url", proxy.url, "--aws-sigv4", "es", *args[1:], env=aws_environment(secret),
                   timeout=600)


def test_every_command_runs_signed(signed: SigV4Proxy, opensearch: OpenSearch, tiny_checkpoint: Path,
                                   tmp_path: Path) -> None:
    source, dest = "signed-source", "signed-dest"
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"s{n}", "text": f"signed request number {n} about Berlin"}) + "\n"
                              for n in range(60)), encoding="utf-8")
    model = ("--model", str(tiny_checkpoint))
    try:
        steps = [
            ("setup", "--index", source, "--replicas", "0", *model),
            ("ingest", "--index", source, *model, "--batch-size", "16", str(corpus)),
            ("search", "--index", source, *model, "--format", "json", "Berlin"),
            ("reindex", "--source", source, "--dest", dest, "--text-field", "text", *model, "--slices", "2",
             "--workers", "2", "--batch-size", "16"),
            ("enrich", "--index", dest, "--text-field", "text", *model, "--batch-size", "16"),
        ]
        for step in steps:
            result = milco_os(signed, *step)
            assert result.returncode == 0, (step[0], result.stderr)
            assert SECRET not in result.stdout + result.stderr
        opensearch.indices.refresh(index=f"{source},{dest}")
        assert opensearch.count(index=source)["count"] == opensearch.count(index=dest)["count"] == 60
        assert json.loads(milco_os(signed, "search", "--index", dest, *model, "--format", "json",
                                   "Berlin").stdout)["hits"]
        assert not signed.log.refused, signed.log.refused
        paths = " ".join(signed.log.accepted)
        for api in ("_bulk", "_search", "_mapping", "_pit" if "_pit" in paths else "_search/scroll"):
            assert api in paths, api  # bulk writes and the sliced reads went through the signer too
    finally:
        opensearch.indices.delete(index=f"{source},{dest}", ignore_unavailable=True)


def test_a_wrong_key_is_refused_and_nothing_is_written(signed: SigV4Proxy, opensearch: OpenSearch,
                                                       tiny_checkpoint: Path) -> None:
    index = "signed-refused"
    refused_before = len(signed.log.refused)
    result = milco_os(signed, "setup", "--index", index, "--replicas", "0", "--model", str(tiny_checkpoint),
                      secret="not-the-secret")
    assert result.returncode == 9, result.stderr
    assert f"refused the AWS-signed request (HTTP 403, signed for es in {REGION})" in result.stderr, result.stderr
    assert "check the AWS credentials" in result.stderr and "not-the-secret" not in result.stderr
    assert signed.log.refused[refused_before:] and all("signature we calculated does not match" in why
                                                       for why in signed.log.refused[refused_before:])
    assert not opensearch.indices.exists(index=index)


def test_no_credentials_are_named_as_the_cause(signed: SigV4Proxy, tiny_checkpoint: Path) -> None:
    result = milco_os(signed, "search", "--index", "any", "--model", str(tiny_checkpoint), "Berlin", secret=None)
    assert result.returncode == 9 and "no AWS credentials found" in result.stderr, result.stderr
