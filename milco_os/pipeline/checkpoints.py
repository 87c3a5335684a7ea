"""How far the ingest of one JSONL file got, so an interrupted run can go on with ``--resume``.

Batches are written in file order, so after a batch is written every line up to its
last one is done (stored, or in the dead-letter file). The checkpoint records that
line, next to the identity of the input file and the target index.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from milco_os.errors import MilcoOsError
from milco_os.pipeline.ingest import Record


class CheckpointMismatchError(MilcoOsError):
    exit_code = 2


@dataclass
class IngestCheckpoint:
    """Every line of ``source`` up to ``line`` is done for ``index``; ``size`` identifies the file's version."""

    source: str
    size: int
    index: str
    line: int = 0

    @classmethod
    def load_or_new(cls, path: Path, source: Path, index: str, resume: bool) -> IngestCheckpoint:
        """The saved checkpoint when resuming (it must match this file and index), else a fresh one."""
        fresh = cls(str(source.resolve()), source.stat().st_size, index)
        if not (resume and path.is_file()):
            return fresh
        saved = cls(**json.loads(path.read_text(encoding="utf-8")))
        if (saved.source, saved.size, saved.index) != (fresh.source, fresh.size, fresh.index):
            raise CheckpointMismatchError(
                f"{path} belongs to an ingest of {saved.source} ({saved.size} bytes) into '{saved.index}', "
                f"not of {fresh.source} ({fresh.size} bytes) into '{index}'.",
                hint="resume with the same file and --index, or drop --resume to start over.")
        return saved

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self)) + "\n", encoding="utf-8")
        temporary.replace(path)

    def remaining(self, records: Iterable[Record]) -> Iterator[Record]:
        """The records after the last line already done."""
        return (record for record in records if record.line > self.line)
