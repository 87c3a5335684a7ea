"""What tritonserver loads for the MILCO model: checks the Python packages, then hands over to the backend.

``model.py`` in an exported version folder puts that folder first on the path and imports
this module from the copy of the milco-os code beside it. Only the standard library is
imported before ``initialize`` has checked ``requirements.txt``, so a server that lacks a
package fails to load the model with an error naming it (not with an ImportError deep
inside torch or transformers).
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import milco_os

REQUIREMENTS_FILE = "requirements.txt"


def unmet_requirements(requirements: list[str]) -> list[str]:
    """Each requirement this Python does not meet: ``"torch (not installed)"``, ``"numpy>=1.24,<2 (2.1.0)"``."""
    installed: dict[str, str] = {}
    unmet = []
    for line in requirements:
        name = line.split(";")[0].strip()
        for separator in "<>=!~[ ":
            name = name.split(separator)[0]
        try:
            installed[line] = metadata.version(name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{name} (not installed)")
    if unmet:
        return unmet
    # Every requirement is installed, transformers among them, and with it ``packaging``.
    from packaging.requirements import Requirement

    return [f"{line} ({version} installed)" for line, version in installed.items()
            if not Requirement(line).specifier.contains(version, prereleases=True)]


def read_requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def log(message: str) -> None:
    """Into the server's log (the stub's output goes there)."""
    print(f"milco-os: {message}", file=sys.stderr, flush=True)


class TritonPythonModel:
    """The python backend's model: the package check, then ``MilcoTritonModel`` does the work."""

    def initialize(self, args: dict) -> None:
        version_dir = Path(args["model_repository"]) / args["model_version"]
        requirements = version_dir / REQUIREMENTS_FILE
        if requirements.is_file():
            unmet = unmet_requirements(read_requirements(requirements))
            if unmet:
                raise RuntimeError(
                    f"model '{args['model_name']}': the Python that runs it lacks {', '.join(unmet)}; "
                    f"install them where tritonserver runs (pip install -r {requirements}).")
        code = Path(milco_os.__file__).resolve().parent
        log(f"model '{args['model_name']}' runs milco-os {milco_os.__version__} code from {code}")

        from milco_os.serving.triton_backend import MilcoTritonModel

        self.model = MilcoTritonModel()
        self.model.initialize(args)

    def execute(self, requests: list) -> list:
        return self.model.execute(requests)

    def finalize(self) -> None:
        self.model.finalize()
