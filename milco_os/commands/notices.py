"""One line per document-level problem on stderr, without flooding it on a bad file."""

from __future__ import annotations

import click
from rich.console import Console

DEFAULT_LIMIT = 20

unavailable_timeout_option = click.option(
    "--unavailable-timeout", default=120.0, show_default=True, type=click.FloatRange(min=0),
    help="Seconds to wait for a cluster or Triton server that stops answering before stopping with a "
         "checkpoint (--resume goes on from it).")


class NoticePrinter:
    """Prints the first ``limit`` notices, then only counts them; ``finish`` says how many were not shown."""

    def __init__(self, console: Console, limit: int = DEFAULT_LIMIT) -> None:
        self.console = console
        self.limit = limit
        self.shown = 0
        self.hidden = 0

    def __call__(self, line: str) -> None:
        if self.shown < self.limit:
            self.shown += 1
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            self.hidden += 1

    def finish(self, where: str) -> None:
        if self.hidden:
            self.console.print(f"... and {self.hidden} more: see {where}", markup=False, highlight=False,
                               soft_wrap=True)
