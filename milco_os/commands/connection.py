"""The cluster connection options shared by every command that talks to a cluster."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import click

from milco_os.cluster import BACKENDS
from milco_os.managed_clusters import AWS_SERVICES

INSECURE_WARNING = ("Warning: TLS certificate verification is OFF (--insecure): the cluster's identity is not "
                    "checked and credentials could go to an impostor.")
# Keys of click's shared ``ctx.meta``: what error reporting may name (the URL) and must hide (the secrets).
META_URL = "milco_os.cluster_url"
META_USER = "milco_os.cluster_user"
META_SECRETS = "milco_os.secrets"
META_SIGNED = "milco_os.aws_signed"  # "es in eu-west-1": requests are signed with AWS SigV4


@dataclass(frozen=True)
class Connection:
    """Where the cluster is and how to authenticate; secrets never show in its repr."""

    url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    insecure: bool = False
    backend: str = "auto"
    aws_sigv4: str | None = None  # sign every request for this AWS service (es, aoss)
    aws_region: str | None = None
    cloud_id: str | None = None  # an Elastic Cloud deployment, instead of url
    client_cert: str | None = None
    client_key: str | None = None

    def client(self):
        """An opensearch-py or elasticsearch client (``backend``, or asked of the cluster); also tells the CLI's
        error reporting which host to name and what to hide."""
        from milco_os.cluster import make_client, redact_url
        from milco_os.managed_clusters import AwsSigning, cloud_id_url

        url = self.url or cloud_id_url(self.cloud_id or "")
        backend = "elasticsearch" if self.cloud_id and self.backend == "auto" else self.backend
        aws = AwsSigning(self.aws_sigv4, self.aws_region or "") if self.aws_sigv4 else None
        context = click.get_current_context(silent=True)
        if context is not None:
            refusal = aws.serverless_refusal(subcommand(context)) if aws else None
            if refusal:
                raise click.UsageError(refusal)
            context.meta[META_URL] = redact_url(url)
            context.meta[META_USER] = self.user
            if aws:
                context.meta[META_SIGNED] = f"{aws.service} in {aws.region}"
            context.meta.setdefault(META_SECRETS, set()).update(s for s in (self.password, self.api_key) if s)
        if self.insecure:
            click.echo(INSECURE_WARNING, err=True)
        return make_client(url, backend=backend, user=self.user, password=self.password, api_key=self.api_key,
                           ca_certs=self.ca_certs, verify_certs=not self.insecure, aws=aws,
                           client_cert=self.client_cert, client_key=self.client_key)


    def engine(self):
        """The cluster as an ``Engine`` (its raw client is ``engine.client``): what a command talks to."""
        from milco_os.engines import engine_for

        return engine_for(self.client())


def connection_options(command: Callable) -> Callable:
    """Adds --url, --backend, --user, --password, --api-key, --ca-certs, --insecure; passes one ``connection``."""

    @functools.wraps(command)
    def wrapper(*args, url, backend, user, password, api_key, ca_certs, insecure, aws_sigv4, aws_region, cloud_id,
                client_cert, client_key, **kwargs):
        if bool(url) == bool(cloud_id):
            raise click.UsageError("give the cluster's --url, or --cloud-id for an Elastic Cloud deployment")
        if client_key and not client_cert:
            raise click.UsageError("--client-key goes with --client-cert")
        connection = Connection(url or "", user, password, api_key, ca_certs, insecure, backend, aws_sigv4,
                                aws_region, cloud_id, client_cert, client_key)
        return command(*args, connection=connection, **kwargs)

    options = (
        click.option("--url", envvar="MILCO_OS_URL", default=None,
                     help="Cluster URL; several nodes' URLs comma-separated, so that requests go on when one "
                          "leaves."),
        click.option("--backend", type=click.Choice(list(BACKENDS)), default="auto",
                     envvar="MILCO_OS_BACKEND", show_default=True,
                     help="Cluster engine; auto asks the cluster's root endpoint."),
        click.option("--user", envvar="MILCO_OS_USER", default=None, help="Basic-auth user."),
        click.option("--password", envvar="MILCO_OS_PASSWORD", default=None,
                     help="Basic-auth password (prefer MILCO_OS_PASSWORD); never printed."),
        click.option("--api-key", envvar="MILCO_OS_API_KEY", default=None,
                     help="API key sent as 'Authorization: ApiKey ...' (prefer MILCO_OS_API_KEY); never printed."),
        click.option("--ca-certs", envvar="MILCO_OS_CA_CERTS", default=None, help="CA bundle for https clusters."),
        click.option("--insecure", is_flag=True, help="Do not verify https certificates (prints a warning)."),
        click.option("--client-cert", envvar="MILCO_OS_CLIENT_CERT", default=None,
                     help="Client certificate (PEM) for clusters that require one (mutual TLS)."),
        click.option("--client-key", envvar="MILCO_OS_CLIENT_KEY", default=None,
                     help="The client certificate's private key (PEM), unless the certificate file holds it."),
        click.option("--aws-sigv4", type=click.Choice(AWS_SERVICES), envvar="MILCO_OS_AWS_SIGV4", default=None,
                     help="Sign every request with AWS Signature V4 for Amazon OpenSearch Service (es) or "
                          "OpenSearch Serverless (aoss); credentials from the AWS chain (environment, profile, "
                          "instance role)."),
        click.option("--aws-region", envvar=["AWS_REGION", "AWS_DEFAULT_REGION"], default=None,
                     help="The AWS region of the domain or collection [default: AWS_REGION]."),
        click.option("--cloud-id", envvar="MILCO_OS_CLOUD_ID", default=None,
                     help="An Elastic Cloud deployment's id, instead of --url (with --api-key)."),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def subcommand(context: click.Context) -> str | None:
    """The name of the milco-os command running (``opensearch-ml`` for ``milco-os opensearch-ml install``)."""
    words = context.command_path.split()
    return words[1] if len(words) > 1 else None
