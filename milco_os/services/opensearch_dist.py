"""Provisioning a runnable OpenSearch distribution from Maven Central artifacts.

The ``integ-test-zip`` distribution is a minimal, runnable OpenSearch without a
bundled JDK. Before 3.5 it carries only the transport modules, so the modules
milco-os needs are added from their Maven artifacts (with their runtime
dependencies, minus what the server already ships), a plugin descriptor and,
where the real distribution has one, a security policy:
``mapper-extras`` (``rank_features`` fields, ``rank_feature`` queries),
``ingest-common`` (ingest pipelines), ``lang-painless`` (pipeline conditions and
scripts) and ``lang-mustache`` (``{{_ingest.timestamp}}`` templates).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from milco_os.services import maven
from milco_os.services.java import JavaHome, find_java

DEFAULT_VERSION = "2.19.6"
READY_MARKER = ".milco-os-ready"
LAYOUT_REVISION = "2"


@dataclass(frozen=True)
class ModuleSpec:
    """A module to add: its folder, its Maven artifact, how to find its plugin class, what it extends."""

    folder: str
    artifact: str
    class_prefix: str
    description: str
    extended_plugins: str = ""
    security_policy: str = ""


MODULES = (
    ModuleSpec("mapper-extras", "mapper-extras-client", "org/opensearch/index/mapper/MapperExtras",
               "Adds advanced field mappers (rank_feature, rank_features, scaled_float, ...)"),
    ModuleSpec("lang-painless", "lang-painless", "org/opensearch/painless/Painless",
               "An easy, safe and fast scripting language for OpenSearch",
               security_policy='grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
                               '  permission java.lang.RuntimePermission "getClassLoader";\n};\n'),
    ModuleSpec("lang-mustache", "lang-mustache-client", "org/opensearch/script/mustache/Mustache",
               "Mustache scripting integration for OpenSearch",
               security_policy='grant {\n  permission java.lang.RuntimePermission "accessDeclaredMembers";\n};\n'),
    ModuleSpec("ingest-common", "ingest-common", "org/opensearch/ingest/common/IngestCommon",
               "Module for ingest processors", extended_plugins="lang-painless"),
)


def distribution_artifact(version: str) -> maven.Artifact:
    return maven.Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", version, "zip")


def jar_base_name(jar: Path) -> str:
    """``lucene-core-9.12.3.jar`` -> ``lucene-core``: the artifact a jar holds, without its version."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9.]+)?$", "", jar.stem)


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


def plugin_class_in(jar: Path, prefix: str) -> str:
    """The plugin class inside a module jar (names differ between 2.x and 3.x, e.g. *ModulePlugin)."""
    with zipfile.ZipFile(jar) as bundle:
        for name in bundle.namelist():
            if name.startswith(prefix) and name.endswith("Plugin.class"):
                return name.removesuffix(".class").replace("/", ".")
    raise ValueError(f"{jar} holds no {prefix}*Plugin class")


def read_properties(path: Path) -> dict[str, str]:
    """A Java ``.properties`` file as a dict (comments and blank lines skipped)."""
    properties: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            properties[key.strip()] = value.strip()
    return properties


def plugin_descriptor(spec: ModuleSpec, plugin_class: str, version: str, java_version: str) -> str:
    """The ``plugin-descriptor.properties`` text of an added module."""
    entries = {
        "description": spec.description,
        "version": version,
        "name": spec.folder,
        "classname": plugin_class,
        "java.version": java_version,
        "opensearch.version": version,
        "custom.foldername": "",
        "extended.plugins": spec.extended_plugins,
        "has.native.controller": "false",
    }
    return "".join(f"{key}={value}\n" for key, value in entries.items())


def add_module(home: Path, spec: ModuleSpec, version: str, repository: Path, scratch: Path) -> None:
    """Install one module into ``home/modules`` unless the distribution already has it."""
    module = home / "modules" / spec.folder
    if module.is_dir():
        return
    artifact = maven.Artifact("org.opensearch.plugin", spec.artifact, version)
    jars = maven.copy_runtime_dependencies(artifact, repository, scratch / spec.folder)
    shipped = {jar_base_name(jar) for jar in (home / "lib").glob("*.jar")}
    module.mkdir(parents=True)
    for jar in jars:
        if jar_base_name(jar) not in shipped:
            shutil.copy2(jar, module / jar.name)
    main_jar = module / f"{spec.artifact}-{version}.jar"
    reference = read_properties(home / "modules" / "transport-netty4" / "plugin-descriptor.properties")
    descriptor = plugin_descriptor(spec, plugin_class_in(main_jar, spec.class_prefix), version,
                                   reference.get("java.version", "11"))
    (module / "plugin-descriptor.properties").write_text(descriptor, encoding="utf-8")
    if spec.security_policy:
        (module / "plugin-security.policy").write_text(spec.security_policy, encoding="utf-8")


def assemble_zip(fetch: Callable[[], Path], home: Path, stamp: str,
                 complete: Callable[[Path, Path], None]) -> Path:
    """``home`` from the distribution zip ``fetch`` provides, once: extracted to scratch, completed by
    ``complete(extracted, scratch)``, stamped, then moved into place (never left half-built)."""
    marker = home / READY_MARKER
    if marker.is_file() and marker.read_text().strip() == stamp:
        return home
    archive = fetch()
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=".extract-") as scratch:
        extract_zip(archive, Path(scratch))
        extracted = Path(scratch) / home.name
        complete(extracted, Path(scratch))
        (extracted / READY_MARKER).write_text(stamp + "\n")
        if home.exists():
            shutil.rmtree(home)
        extracted.rename(home)
    return home


def install(version: str, *, repository: Path, installs: Path) -> Path:
    """A ready OpenSearch home for ``version`` under ``installs`` (downloaded and assembled once)."""
    def add_modules(extracted: Path, scratch: Path) -> None:
        for spec in MODULES:
            add_module(extracted, spec, version, repository, scratch / "modules")

    return assemble_zip(lambda: maven.fetch(distribution_artifact(version), repository),
                        installs / f"opensearch-{version}", f"{version} {LAYOUT_REVISION}", add_modules)
