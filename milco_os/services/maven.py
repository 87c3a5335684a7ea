"""Fetching artifacts from Maven Central with the machine's own ``mvn``."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from milco_os.errors import MissingToolError, ServiceError

MVN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Artifact:
    """Maven coordinates ``group:artifact:version[:packaging]``."""

    group: str
    artifact: str
    version: str
    packaging: str = "jar"

    @property
    def coordinates(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}:{self.packaging}"

    def path_in(self, repository: Path) -> Path:
        """Where ``mvn`` stores this artifact inside a local repository."""
        return (
            repository.joinpath(*self.group.split("."), self.artifact, self.version)
            / f"{self.artifact}-{self.version}.{self.packaging}"
        )


def find_mvn(purpose: str) -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingToolError(
            f"Maven ('mvn') is needed to download {purpose} from Maven Central, and it is not on PATH.",
            hint="install Maven (e.g. 'apt-get install maven') and run the command again.",
        )
    return mvn


def run_mvn(command: list[str], purpose: str) -> None:
    """Run one mvn command; a clear error with mvn's last lines when it fails or hangs."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=MVN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(
            f"mvn did not finish downloading {purpose} within {MVN_TIMEOUT_S} s.",
            hint="check that Maven Central (or your mirror in ~/.m2/settings.xml) is reachable.",
        ) from exc
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-50:])
        raise ServiceError(
            f"Maven could not provide {purpose} (mvn exit code {result.returncode}).",
            hint="check the version exists on Maven Central and that your Maven mirror serves it.",
            log_tail=output,
        )


def copy_runtime_dependencies(artifact: Artifact, repository: Path, output: Path) -> list[Path]:
    """The artifact and its transitive runtime dependencies, copied into ``output`` by mvn."""
    output.mkdir(parents=True, exist_ok=True)
    pom = output / "pom.xml"
    pom.write_text(
        "<project><modelVersion>4.0.0</modelVersion><groupId>milco-os</groupId><artifactId>module</artifactId>"
        "<version>1</version><dependencies><dependency>"
        f"<groupId>{artifact.group}</groupId><artifactId>{artifact.artifact}</artifactId>"
        f"<version>{artifact.version}</version></dependency></dependencies></project>\n"
    )
    run_mvn([find_mvn(artifact.coordinates), "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={output / 'jars'}", f"-Dmaven.repo.local={repository}"],
            f"{artifact.coordinates} and its dependencies")
    pom.unlink()
    return sorted((output / "jars").glob("*.jar"))


def fetch(artifact: Artifact, repository: Path) -> Path:
    """The artifact's file in ``repository``, downloaded with ``mvn dependency:get`` unless already there."""
    target = artifact.path_in(repository)
    if target.is_file():
        return target
    command = [
        find_mvn(artifact.coordinates), "-B", "-q", "dependency:get",
        f"-Dartifact={artifact.coordinates}",
        "-Dtransitive=false",
        f"-Dmaven.repo.local={repository}",
    ]
    run_mvn(command, artifact.coordinates)
    if not target.is_file():
        raise ServiceError(f"mvn reported success but {target} is missing.")
    return target
