"""Finding a Java runtime whose major version suits the service to run."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from milco_os.errors import MissingToolError

JAVA_HOME_ENV = "MILCO_OS_JAVA_HOME"
JVM_DIRS = (Path("/usr/lib/jvm"), Path("/usr/java"), Path("/opt/java"), Path("/Library/Java/JavaVirtualMachines"))


@dataclass(frozen=True)
class JavaHome:
    """An installed JDK/JRE and its major version."""

    path: Path
    major: int

    @property
    def java(self) -> Path:
        return self.path / "bin" / "java"


def parse_release_major(release_text: str) -> int | None:
    """The major version from a JDK ``release`` file (``JAVA_VERSION="17.0.15"`` -> 17, ``"1.8.0"`` -> 8)."""
    match = re.search(r'^JAVA_VERSION="([0-9]+)(?:\.([0-9]+))?', release_text, re.MULTILINE)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


def inspect_java_home(path: Path) -> JavaHome | None:
    """A JavaHome for ``path`` when it holds an executable java and a readable release file."""
    path = path.resolve()
    try:
        major = parse_release_major((path / "release").read_text())
    except OSError:
        return None
    if major is None or not os.access(path / "bin" / "java", os.X_OK):
        return None
    return JavaHome(path, major)


def candidate_java_homes() -> list[JavaHome]:
    """Java homes from MILCO_OS_JAVA_HOME, JAVA_HOME, the java on PATH and the usual JVM folders."""
    paths: list[Path] = []
    for variable in (JAVA_HOME_ENV, "JAVA_HOME"):
        if os.environ.get(variable):
            paths.append(Path(os.environ[variable]))
    on_path = shutil.which("java")
    if on_path:
        paths.append(Path(on_path).resolve().parent.parent)
    for folder in JVM_DIRS:
        if folder.is_dir():
            paths.extend(sorted(folder.iterdir()))
            paths.extend(sorted(folder.glob("*/Contents/Home")))
    seen: set[Path] = set()
    homes: list[JavaHome] = []
    for path in paths:
        home = inspect_java_home(path)
        if home and home.path not in seen:
            seen.add(home.path)
            homes.append(home)
    return homes


def find_java(minimum: int, maximum: int, purpose: str) -> JavaHome:
    """The first Java home with ``minimum <= major <= maximum``, preferring explicit settings."""
    homes = candidate_java_homes()
    for home in homes:
        if minimum <= home.major <= maximum:
            return home
    found = ", ".join(f"{h.path} (Java {h.major})" for h in homes) or "none"
    raise MissingToolError(
        f"{purpose} needs Java {minimum} to {maximum}; Java runtimes found: {found}.",
        hint=f"install a JDK {minimum}-{maximum} (e.g. 'apt-get install openjdk-{minimum}-jdk-headless') "
        f"or point {JAVA_HOME_ENV} at one.",
    )
