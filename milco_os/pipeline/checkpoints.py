"""How far a job got, so an interrupted run can go on with ``--resume``: files by line, index slices by cursor.

Both advance only from a finished batch's report (``BatchReport``): batches are recorded in
order, so after a batch every input up to its last one is done (stored, skipped, or in the
dead-letter file).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from milco_os.errors import MilcoOsError
from milco_os.pipeline.ingest import BatchReport


class CheckpointMismatchError(MilcoOsError):
    exit_code = 2


@dataclass
class FileCheckpoint:
    """Every line of ``source`` up to ``line`` is done for ``index``; ``size`` identifies the file's version."""

    source: str
    size: int
    index: str
    line: int = 0

    @classmethod
    def load_or_new(cls, path: Path, source: Path, index: str, resume: bool) -> FileCheckpoint:
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

    def advance(self, report: BatchReport, path: Path) -> None:
        """Every line up to the batch's last is done; saved at once."""
        self.line = int(report.last_position)
        self.save(path)


@dataclass
class SliceState:
    """A slice's checkpoint: where reading stopped, and what was done so far."""

    pit: str | None = None
    cursor: list | None = None
    done: bool = False
    read: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0

    def advance(self, report: BatchReport) -> None:
        self.cursor = report.last_position  # type: ignore[assignment]
        self.read += report.read
        self.written += report.written
        self.skipped += report.skipped
        self.failed += report.failed


@dataclass
class SliceCheckpoint:
    """The progress of a reindex's or enrich's slices (all ``total`` of them, or one share's), saved as JSON next to
    the dead-letter file."""

    path: Path
    source: str
    dest: str
    slices: dict[int, SliceState] = field(default_factory=dict)
    total: int = 0
    run: str = field(default_factory=lambda: uuid.uuid4().hex)  # this run of the job (kept by --resume)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load_or_new(cls, path: Path, source: str, dest: str, slices: int, resume: bool,
                    slice_ids: list[int] | None = None) -> SliceCheckpoint:
        """The saved checkpoint when resuming (it must be of the same job and slices), else a fresh one for
        ``slice_ids`` (default: every slice) of ``slices``."""
        slice_ids = list(range(slices)) if slice_ids is None else slice_ids
        if resume and path.is_file():
            data = json.loads(path.read_text())
            total = data.get("total", len(data["slices"]))
            saved_ids = sorted(int(k) for k in data["slices"])
            if (data["source"], data["dest"], total, saved_ids) != (source, dest, slices, sorted(slice_ids)):
                raise CheckpointMismatchError(
                    f"{path} belongs to a reindex of {data['source']} -> {data['dest']} over slices "
                    f"{', '.join(map(str, saved_ids))} of {total}, not this one.",
                    hint="use the same --source, --dest, --slices and --share, or drop --resume.")
            return cls(path, source, dest, {int(k): SliceState(**v) for k, v in data["slices"].items()}, total,
                       data.get("run") or uuid.uuid4().hex)
        return cls(path, source, dest, {n: SliceState() for n in slice_ids}, slices)

    def save(self) -> None:
        with self.lock:
            data = {"source": self.source, "dest": self.dest, "total": self.total, "run": self.run,
                    "slices": {str(n): asdict(state) for n, state in self.slices.items()}}
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(data, indent=1))
            temporary.replace(self.path)
