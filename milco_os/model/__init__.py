"""MILCO model: offline checkpoint loading and faithful in-process encoding."""

from milco_os.model.encoder import MilcoEncoder

__all__ = ["MilcoEncoder"]
