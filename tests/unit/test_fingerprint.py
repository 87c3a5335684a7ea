"""The model fingerprint: a digest of the checkpoint's files, cached against their sizes and times."""

from __future__ import annotations

from pathlib import Path

import pytest

from milco_os.encoding import fingerprint as fingerprints
from milco_os.encoding.fingerprint import checkpoint_sha256, fingerprint, short
from milco_os.encoding.served_model import CHECKPOINT_PARAMETER, served_checkpoint


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILCO_OS_CACHE", str(tmp_path / "cache"))


def checkpoint(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "vocab.txt").write_text("[PAD]\nberlin\n", encoding="utf-8")
    return folder


def test_the_fingerprint_is_the_digest_of_the_files_and_changes_with_any_of_them(tmp_path: Path) -> None:
    first = checkpoint(tmp_path / "milco", b"weights one")
    digest = fingerprint(first)
    assert digest == checkpoint_sha256(first) and len(digest) == 64
    other = checkpoint(tmp_path / "elsewhere" / "milco", b"weights two")  # same folder name, other weights
    assert fingerprint(other) != digest
    (first / "vocab.txt").write_text("[PAD]\nparis\n", encoding="utf-8")
    assert fingerprint(first) not in (digest, fingerprint(other))
    assert short(digest) == digest[:12] and short(None) == "none recorded"


def test_a_cached_digest_is_used_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = checkpoint(tmp_path / "milco", b"weights")
    digest = fingerprint(folder)
    hashed: list[Path] = []
    monkeypatch.setattr(fingerprints, "checkpoint_sha256", lambda path: hashed.append(path) or "recomputed")
    assert fingerprint(folder) == digest and not hashed
    (folder / "model.safetensors").write_bytes(b"other weights, other size")
    assert fingerprint(folder) == "recomputed" and hashed == [folder.resolve()]


def test_a_served_model_s_configuration_gives_its_checkpoint_digest() -> None:
    assert served_checkpoint({"parameters": {CHECKPOINT_PARAMETER: {"string_value": "ab" * 32}}}) == "ab" * 32
    assert served_checkpoint({"parameters": {}}) is None and served_checkpoint({}) is None
