"""Managed clusters: AWS Signature Version 4 (Amazon OpenSearch Service and Serverless) and Elastic Cloud ids.

Signing uses opensearch-py's ``Urllib3AWSV4SignerAuth`` with credentials from botocore's
standard chain (environment, shared profile, container or instance role), so every request
of every client is signed, bulk and scroll/PIT included. An Elastic Cloud id decodes, by the
elastic-transport client's own parser, into the https URL of the deployment's Elasticsearch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from milco_os.errors import CredentialsError, MilcoOsError

AWS_SERVICES = ("es", "aoss")  # Amazon OpenSearch Service, OpenSearch Serverless
# What OpenSearch Serverless collections lack that a command needs (AWS's "Supported operations and plugins"):
# it is said before the command starts rather than found half way.
SERVERLESS_LACKS = {
    "opensearch-ml": "ml-commons connectors and models",
}


@dataclass(frozen=True)
class AwsSigning:
    """Sign every request for ``service`` (es or aoss) in ``region``."""

    service: str
    region: str

    def __post_init__(self) -> None:
        if self.service not in AWS_SERVICES:
            raise MilcoOsError(f"--aws-sigv4 signs for one of {', '.join(AWS_SERVICES)}, not {self.service!r}")
        if not self.region:
            raise MilcoOsError("--aws-sigv4 needs a region", hint="give --aws-region or set AWS_REGION.")

    def auth(self) -> Any:
        """opensearch-py's SigV4 signer over the credentials botocore's chain finds; CredentialsError without."""
        import botocore.session
        from botocore.exceptions import BotoCoreError
        from opensearchpy import Urllib3AWSV4SignerAuth

        try:
            credentials = botocore.session.get_session().get_credentials()
        except BotoCoreError as exc:
            raise CredentialsError(f"AWS credentials for --aws-sigv4 could not be read: {exc}") from None
        if credentials is None:
            raise CredentialsError("no AWS credentials found for --aws-sigv4 (looked in the environment, the "
                                   "shared profile and the instance role)",
                                   hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE.")
        return Urllib3AWSV4SignerAuth(credentials, self.region, self.service)

    def serverless_refusal(self, command: str | None) -> str | None:
        """Why ``command`` cannot run on an OpenSearch Serverless collection (None: it can, or this is not one)."""
        lacking = SERVERLESS_LACKS.get(command or "") if self.service == "aoss" else None
        return f"OpenSearch Serverless has no {lacking}, which '{command}' needs" if lacking else None


def cloud_id_url(cloud_id: str) -> str:
    """The https URL of the Elasticsearch endpoint an Elastic Cloud id names (``name:base64(host$es$kibana)``)."""
    from elastic_transport.client_utils import parse_cloud_id

    try:
        parsed = parse_cloud_id(cloud_id)
    except ValueError as exc:
        raise MilcoOsError(f"--cloud-id is not an Elastic Cloud id: {exc}",
                           hint="copy it from the deployment's page (name:base64 text).") from None
    if parsed.es_address is None:
        raise MilcoOsError("--cloud-id names no Elasticsearch endpoint")
    host, port = parsed.es_address
    return f"https://{host}:{port}"
