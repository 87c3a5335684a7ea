"""Triton python-backend entry point: MILCO encoding with milco_os (which must be installed where the stub runs)."""

from milco_os.serving.triton_backend import MilcoTritonModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
