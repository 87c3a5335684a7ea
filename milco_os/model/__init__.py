"""MILCO model: offline checkpoint loading and faithful in-process encoding."""

from __future__ import annotations

__all__ = ["MilcoEncoder"]


def __getattr__(name: str):
    """``MilcoEncoder`` on first use: importing it loads torch and transformers (seconds), which the modules
    of this package that only read a checkpoint's configuration do not need."""
    if name == "MilcoEncoder":
        from milco_os.model.encoder import MilcoEncoder

        return MilcoEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
