"""What a writing job (ingest, reindex, enrich) keeps on disk and shows: dead letters, checkpoint, progress, notices.

The dead-letter file names the job's files: its checkpoint lives beside it. A job that
finishes with no dead letters removes both; one with dead letters keeps both and says where.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import click
from rich.console import Console
from rich.progress import Progress, ProgressColumn

from milco_os.errors import MilcoOsError
from milco_os.pipeline.dead_letters import DeadLetters

DEFAULT_NOTICE_LIMIT = 20

dead_letter_option = click.option(
    "--dead-letter", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="JSONL file for refused documents (default: named after the input); the checkpoint lives beside it.")
resume_option = click.option("--resume", is_flag=True,
                             help="Go on from the checkpoint a previous, interrupted run left beside the dead letters.")


class NoticePrinter:
    """Prints the first ``limit`` notices, then only counts them; ``finish`` says how many were not shown."""

    def __init__(self, console: Console, limit: int = DEFAULT_NOTICE_LIMIT) -> None:
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


class JobFiles:
    """A job's dead-letter file and the checkpoint beside it."""

    def __init__(self, dead_letter: Path) -> None:
        self.dead_letter = dead_letter
        self.checkpoint = dead_letter.with_suffix(".checkpoint.json")
        self.console = Console(stderr=True)

    def say(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    @contextmanager
    def running(self, resume: bool, *columns: ProgressColumn) -> Iterator[tuple[Progress, DeadLetters, NoticePrinter]]:
        """A progress display, the dead letters (appended to when resuming) and the notice printer, for the
        length of the job; an error that stops it says where its progress is saved."""
        previous = sum(1 for _ in self.dead_letter.open(encoding="utf-8")) \
            if resume and self.dead_letter.exists() else 0
        with self.dead_letter.open("a" if resume else "w", encoding="utf-8") as stream, \
                Progress(*columns, console=self.console, transient=True) as progress:
            notices = NoticePrinter(progress.console)
            letters = DeadLetters(stream, on_entry=notices)
            letters.count = previous
            try:
                yield progress, letters, notices
            except MilcoOsError:
                self.say(f"progress saved in {self.checkpoint}: once the service is back, run the same command "
                         "with --resume")
                raise
            finally:
                notices.finish(str(self.dead_letter))

    def finish(self, refused: int, *, keep_checkpoint: bool = False) -> None:
        """Remove the files of a job with no dead letters (the checkpoint too, unless ``keep_checkpoint``), else
        keep both, say where, and exit 1."""
        if refused:
            click.echo(f"{refused} document(s) refused: see {self.dead_letter} (progress in {self.checkpoint})",
                       err=True)
            raise SystemExit(1)
        self.dead_letter.unlink(missing_ok=True)
        if not keep_checkpoint:
            self.checkpoint.unlink(missing_ok=True)
