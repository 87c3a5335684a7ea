"""Which model wrote a vector: one digest of a checkpoint's files, the same in process and on Triton.

A MILCO checkpoint folder holds all that determines its vectors (weights, tokenizer and
vocabulary files, the configuration that lays out the two views), so the fingerprint is a
SHA-256 over its files, names and contents in name order. The export records it in the
served model's configuration (``served_model.CHECKPOINT_PARAMETER``), where the Triton
client reads it back. Hashing the released checkpoint reads 2 GB, so each digest is kept
in the cache folder against the files' sizes and modification times.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from milco_os.paths import cache_dir

CHUNK = 1 << 20
CACHE_FILE = "checkpoint-digests.json"
SHORT = 12  # hex digits shown in messages
_cache_lock = threading.Lock()


def checkpoint_sha256(checkpoint: Path) -> str:
    """One SHA-256 over the checkpoint folder's files (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in checkpoint_files(checkpoint):
        digest.update(path.name.encode("utf-8") + b"\0")
        with path.open("rb") as file:
            while chunk := file.read(CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def checkpoint_files(checkpoint: Path) -> list[Path]:
    return sorted(p for p in checkpoint.iterdir() if p.is_file())


def fingerprint(checkpoint: Path) -> str:
    """``checkpoint_sha256``, from the cache when no file of the folder changed since it was computed."""
    folder = checkpoint.resolve()
    stamp = {path.name: [path.stat().st_size, path.stat().st_mtime_ns] for path in checkpoint_files(folder)}
    cache = cache_dir() / CACHE_FILE
    with _cache_lock:
        known = read_cache(cache)
        entry = known.get(str(folder))
        if entry and entry.get("files") == stamp:
            return entry["sha256"]
        digest = checkpoint_sha256(folder)
        known[str(folder)] = {"files": stamp, "sha256": digest}
        scratch = cache.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(known), encoding="utf-8")
        scratch.replace(cache)  # whole or not at all, should two processes write at once
        return digest


def read_cache(path: Path) -> dict:
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def short(digest: str | None) -> str:
    """A digest as messages show it."""
    return digest[:SHORT] if digest else "none recorded"
