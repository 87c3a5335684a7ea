"""The cluster connection options shared by every command that talks to a cluster."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import click

from milco_os.cluster import BACKENDS

INSECURE_WARNING = ("Warning: TLS certificate verification is OFF (--insecure): the cluster's identity is not "
                    "checked and credentials could go to an impostor.")
# Keys of click's shared ``ctx.meta``: what error reporting may name (the URL) and must hide (the secrets).
META_URL = "milco_os.cluster_url"
META_USER = "milco_os.cluster_user"
META_SECRETS = "milco_os.secrets"


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

    def client(self):
        """An opensearch-py or elasticsearch client (``backend``, or asked of the cluster); also tells the CLI's
        error reporting which host to name and what to hide."""
        from milco_os.cluster import make_client, redact_url

        context = click.get_current_context(silent=True)
        if context is not None:
            context.meta[META_URL] = redact_url(self.url)
            context.meta[META_USER] = self.user
            context.meta.setdefault(META_SECRETS, set()).update(s for s in (self.password, self.api_key) if s)
        if self.insecure:
            click.echo(INSECURE_WARNING, err=True)
        return make_client(self.url, backend=self.backend, user=self.user, password=self.password,
                           api_key=self.api_key, ca_certs=self.ca_certs, verify_certs=not self.insecure)


    def engine(self):
        """The cluster as an ``Engine`` (its raw client is ``engine.client``): what a command talks to."""
        from milco_os.engines import engine_for

        return engine_for(self.client())


def connection_options(command: Callable) -> Callable:
    """Adds --url, --backend, --user, --password, --api-key, --ca-certs, --insecure; passes one ``connection``."""

    @functools.wraps(command)
    def wrapper(*args, url, backend, user, password, api_key, ca_certs, insecure, **kwargs):
        connection = Connection(url, user, password, api_key, ca_certs, insecure, backend)
        return command(*args, connection=connection, **kwargs)

    options = (
        click.option("--url", required=True, envvar="MILCO_OS_URL",
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
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
