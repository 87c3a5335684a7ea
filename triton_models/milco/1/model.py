"""Triton python-backend entry point for MILCO.

`milco-os triton export` writes the milco-os code this model runs beside this file
(`milco_os/`), with the Python packages it needs (`requirements.txt`). This folder goes
first on the path, so the model runs the code it was exported with, never another
milco-os installed where the server runs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from milco_os.serving.triton_entry import TritonPythonModel  # noqa: E402

__all__ = ["TritonPythonModel"]
