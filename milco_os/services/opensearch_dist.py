"""Provisioning a runnable OpenSearch distribution from Maven Central artifacts.

The ``integ-test-zip`` distribution is a minimal, runnable OpenSearch without a
bundled JDK. Before 3.5 it carries only the transport module, so the
``mapper-extras`` module (``rank_features`` fields, ``rank_feature`` queries) is
added from its client jar plus a plugin descriptor.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from milco_os.services import maven
from milco_os.services.java import JavaHome, find_java

DEFAULT_VERSION = "2.19.6"
READY_MARKER = ".milco-os-ready"
MAPPER_EXTRAS = "mapper-extras"
PLUGIN_CLASS_PREFIX = "org/opensearch/index/mapper/MapperExtras"


def distribution_artifact(version: str) -> maven.Artifact:
    return maven.Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def mapper_extras_artifact(version: str) -> maven.Artifact:
    return maven.Artifact("org.opensearch.plugin", "mapper-extras-client", version)


def major_version(version: str) -> int:
    return int(version.split(".", 1)[0])


def java_for(version: str) -> JavaHome:
    """OpenSearch 2.x needs Java 11-23 (it relies on the SecurityManager); 3.x needs Java 21+."""
    if major_version(version) >= 3:
        return find_java(21, 99, f"OpenSearch {version}")
    return find_java(11, 23, f"OpenSearch {version}")


def extract_zip(archive: Path, destination: Path) -> None:
    """Extract ``archive`` keeping the Unix permission bits (``zipfile`` alone drops them)."""
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            extracted = Path(bundle.extract(info, destination))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                extracted.chmod(mode)


def plugin_class_in(jar: Path) -> str:
    """The mapper-extras plugin class inside its jar (the name differs between 2.x and 3.x)."""
    with zipfile.ZipFile(jar) as bundle:
        for name in bundle.namelist():
            if name.startswith(PLUGIN_CLASS_PREFIX) and name.endswith("Plugin.class"):
                return name.removesuffix(".class").replace("/", ".")
    raise ValueError(f"{jar} holds no {PLUGIN_CLASS_PREFIX}*Plugin class")


def read_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file as a dict (comments and blank lines skipped)."""
    properties: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def mapper_extras_descriptor(plugin_class: str, version: str, java_version: str) -> str:
    """The ``plugin-descriptor.properties`` text for the mapper-extras module."""
    entries = {
        "description": "Adds advanced field mappers (rank_feature, rank_features, scaled_float, ...)",
        "version": version,
        "name": MAPPER_EXTRAS,
        "classname": plugin_class,
        "java.version": java_version,
        "opensearch.version": version,
        "custom.foldername": "",
        "extended.plugins": "",
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in entries.items())


def add_mapper_extras(home: Path, version: str, repository: Path) -> None:
    """Install the mapper-extras module into ``home/modules`` unless the distribution has it."""
    module = home / "modules" / MAPPER_EXTRAS
    if module.is_dir():
        return
    jar = maven.fetch(mapper_extras_artifact(version), repository)
    reference = read_properties(home / "modules" / "transport-netty4" / "plugin-descriptor.properties")
    module.mkdir(parents=True)
    shutil.copy2(jar, module / jar.name)
    descriptor = mapper_extras_descriptor(plugin_class_in(jar), version, reference.get("java.version", "11"))
    (module / "plugin-descriptor.properties").write_text(descriptor, encoding="utf-8")


def install(version: str, *, repository: Path, installs: Path) -> Path:
    """A ready OpenSearch home for ``version`` under ``installs`` (downloaded and built once)."""
    home = installs / f"opensearch-{version}"
    if (home / READY_MARKER).is_file():
        return home
    archive = maven.fetch(distribution_artifact(version), repository)
    installs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=installs, prefix=".extract-") as scratch:
        extract_zip(archive, Path(scratch))
        extracted = Path(scratch) / f"opensearch-{version}"
        add_mapper_extras(extracted, version, repository)
        (extracted / READY_MARKER).write_text(version + "\n")
        if home.exists():
            shutil.rmtree(home)
        extracted.rename(home)
    return home
