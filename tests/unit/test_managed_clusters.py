"""Connections to managed clusters without a network: Elastic Cloud ids, SigV4 settings, Serverless refusals."""

from __future__ import annotations

import base64
import os

import pytest
from click.testing import CliRunner

from milco_os.cli import main
from milco_os.errors import CredentialsError, MilcoOsError
from milco_os.managed_clusters import AwsSigning, cloud_id_url


def test_an_elastic_cloud_id_decodes_to_its_elasticsearch_endpoint() -> None:
    # The documented format: the deployment's name, a colon, base64 of "host$elasticsearch-id$kibana-id".
    encoded = base64.b64encode(b"us-east-1.aws.found.io$4fa8821e75634032bed1cf22110e2f97$4fa8821e756340").decode()
    assert cloud_id_url(f"my-deployment:{encoded}") == \
        "https://4fa8821e75634032bed1cf22110e2f97.us-east-1.aws.found.io:443"
    with_port = base64.b64encode(b"eu-west-1.aws.found.io:9243$abc$def").decode()
    assert cloud_id_url(f"x:{with_port}") == "https://abc.eu-west-1.aws.found.io:9243"
    with pytest.raises(MilcoOsError, match="not an Elastic Cloud id"):
        cloud_id_url("no-colon-here")


def test_signing_settings_are_checked() -> None:
    with pytest.raises(MilcoOsError, match="needs a region"):
        AwsSigning("es", "")
    with pytest.raises(MilcoOsError, match="signs for one of es, aoss"):
        AwsSigning("s3", "eu-west-1")


def test_no_credentials_is_a_credentials_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(CredentialsError, match="no AWS credentials found"):
        AwsSigning("es", "eu-west-1").auth()


def test_serverless_refuses_what_it_lacks_before_starting() -> None:
    assert "ml-commons" in AwsSigning("aoss", "eu-west-1").serverless_refusal("opensearch-ml")
    assert AwsSigning("aoss", "eu-west-1").serverless_refusal("search") is None
    assert AwsSigning("es", "eu-west-1").serverless_refusal("opensearch-ml") is None
    result = CliRunner().invoke(main, ["opensearch-ml", "uninstall", "--url", "https://collection.example:443",
                                       "--aws-sigv4", "aoss", "--aws-region", "eu-west-1", "--name", "x"])
    assert result.exit_code == 2
    assert "OpenSearch Serverless has no ml-commons connectors and models" in result.output


def test_url_or_cloud_id_but_not_both() -> None:
    for args in ([], ["--url", "http://127.0.0.1:1", "--cloud-id", "x:eA=="]):
        result = CliRunner().invoke(main, ["status", *args], env={"MILCO_OS_URL": None})
        assert result.exit_code == 2 and "--cloud-id for an Elastic Cloud deployment" in result.output
