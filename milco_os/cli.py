"""The ``milco-os`` command line."""

from __future__ import annotations

import click

from milco_os import __version__
from milco_os.commands.demo import demo
from milco_os.commands.dev_cluster import dev_cluster
from milco_os.commands.encode import encode, tiny_checkpoint
from milco_os.commands.evaluate import evaluate
from milco_os.commands.index import ingest, search, setup
from milco_os.commands.reindex import enrich, reindex
from milco_os.commands.triton import triton
from milco_os.errors import MilcoOsError


class MilcoOsGroup(click.Group):
    """A click group that turns MilcoOsError into one clear message and its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MilcoOsError as exc:
            click.secho(f"Error: {exc}", err=True, fg="red")
            ctx.exit(exc.exit_code)


@click.group(cls=MilcoOsGroup)
@click.version_option(__version__, prog_name="milco-os")
def main() -> None:
    """MILCO multilingual learned sparse retrieval for OpenSearch and Elasticsearch."""


for command in (demo, dev_cluster, encode, enrich, evaluate, ingest, reindex, search, setup, tiny_checkpoint,
                triton):
    main.add_command(command)
