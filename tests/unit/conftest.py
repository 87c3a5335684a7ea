"""A tiny random MILCO checkpoint in the released layout, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from milco_os.model import MilcoEncoder
from milco_os.testing import make_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-milco"), seed=7)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_checkpoint: Path) -> MilcoEncoder:
    return MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu")
