"""The ``milco-os`` command line."""

from __future__ import annotations

import click

from milco_os import __version__
from milco_os.commands.connection import META_SECRETS, META_SIGNED, META_URL, META_USER
from milco_os.commands.demo import demo
from milco_os.commands.dev_cluster import dev_cluster
from milco_os.commands.encode import encode, tiny_checkpoint
from milco_os.commands.evaluate import evaluate
from milco_os.commands.ingest import ingest
from milco_os.commands.opensearch_ml import opensearch_ml
from milco_os.commands.reindex import enrich, reindex
from milco_os.commands.search import search
from milco_os.commands.setup import setup
from milco_os.commands.status import status
from milco_os.commands.triton import triton
from milco_os.engines import classify_error
from milco_os.errors import MilcoOsError

SECRET_MASK = "***"


class MilcoOsGroup(click.Group):
    """A click group that turns MilcoOsError and cluster client errors (opensearch-py or elasticsearch) into one
    clear message and an exit code.

    Any secret given on the command line is masked in that message, whatever produced it.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MilcoOsError as exc:
            self.fail(ctx, exc)
        except Exception as exc:
            if classify_error(exc) is None:
                raise
            from milco_os.cluster import cluster_error

            self.fail(ctx, cluster_error(exc, ctx.meta.get(META_URL, "the cluster"), ctx.meta.get(META_USER),
                                         ctx.meta.get(META_SIGNED)))

    @staticmethod
    def fail(ctx: click.Context, error: MilcoOsError) -> None:
        message = f"Error: {error}"
        for secret in ctx.meta.get(META_SECRETS, ()):
            message = message.replace(secret, SECRET_MASK)
        click.secho(message, err=True, fg="red")
        ctx.exit(error.exit_code)


@click.group(cls=MilcoOsGroup)
@click.version_option(__version__, prog_name="milco-os")
def main() -> None:
    """MILCO multilingual learned sparse retrieval for OpenSearch and Elasticsearch."""


for command in (demo, dev_cluster, encode, enrich, evaluate, ingest, opensearch_ml, reindex, search, setup, status,
                tiny_checkpoint, triton):
    main.add_command(command)
