"""What a MILCO checkpoint's ``config.json`` says, and the precisions it can be served in: no torch, so the
commands that only check a checkpoint (``triton export``) start in a second."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from milco_os.errors import MilcoOsError

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")


def check_precision(precision: str) -> str:
    """``precision`` when it is one of ``PRECISIONS``, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    return precision


class CheckpointError(MilcoOsError):
    """A checkpoint file is missing or not what the released format promises."""

    exit_code = 5


@dataclass(frozen=True)
class MilcoConfig:
    """The MILCO-level settings of ``config.json``."""

    en_vocab_size: int
    en_hidden_size: int
    m_vocab_size: int
    m_hidden_size: int
    echo: bool
    raw: dict

    @classmethod
    def read(cls, path: Path) -> MilcoConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path} is missing: a MILCO checkpoint needs its config.json.") from exc
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON ({exc}).") from exc
        if raw.get("model_type") != "milco":
            raise CheckpointError(f"{path}: expected \"model_type\": \"milco\", found {raw.get('model_type')!r}.")
        try:
            return cls(
                en_vocab_size=int(raw.get("en_vocab_size", 30522)),
                en_hidden_size=int(raw.get("en_hidden_size", 768)),
                m_vocab_size=int(raw.get("m_vocab_size", 250002)),
                m_hidden_size=int(raw.get("m_hidden_size", 1024)),
                echo=bool(raw.get("echo", True)),
                raw=raw,
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: vocabulary and hidden sizes must be integers ({exc}).") from exc
