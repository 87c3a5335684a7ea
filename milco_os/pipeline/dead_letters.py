"""The dead-letter file: every refused input as one JSON line (line, id, field, reason, record)."""

from __future__ import annotations

import json
import threading
from typing import Callable, TextIO

from milco_os.pipeline.documents import Outcome


# Characters that JSON leaves raw but line readers (str.splitlines) take for line breaks.
LINE_BREAKS_ESCAPED = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class DeadLetters:
    """Refused inputs as JSON lines; ``on_entry`` gets each reason as one line (the CLI prints it).

    Shared by the slices of a reindex: entries are added under a lock.
    """

    def __init__(self, stream: TextIO | None, on_entry: Callable[[str], None] = lambda reason: None) -> None:
        self.stream = stream
        self.on_entry = on_entry
        self.count = 0
        self._lock = threading.Lock()

    def add(self, outcome: Outcome) -> None:
        entry = {"line": outcome.line, "id": outcome.doc_id, "field": outcome.field, "reason": outcome.reason,
                 "record": outcome.record}
        line = json.dumps(entry, ensure_ascii=False, default=str).translate(LINE_BREAKS_ESCAPED)
        if not is_utf8(line):  # lone surrogates: kept as JSON escapes
            line = json.dumps(entry, default=str)
        reason = (outcome.reason or "refused").encode("utf-8", "backslashreplace").decode("utf-8")
        with self._lock:
            self.count += 1
            self.on_entry(reason)
            if self.stream is not None:
                self.stream.write(line + "\n")
                self.stream.flush()


def is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
