"""The modules an OpenSearch ``integ-test-zip`` distribution lacks, added from Maven Central artifacts.

Before 3.5 that distribution carries only the transport modules, so the modules
milco-os needs are added from their Maven artifacts (with their runtime
dependencies, minus what the server already ships), a plugin descriptor and,
where the real distribution has one, a security policy:
``mapper-extras`` (``rank_features`` fields, ``rank_feature`` queries),
``ingest-common`` (ingest pipelines), ``lang-painless`` (pipeline conditions and
scripts), ``lang-mustache`` (``{{_ingest.timestamp}}`` templates) and ``parent-join``
(``join`` fields, whose parent/child documents reindex must copy under their routing).
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

from milco_os.services import maven


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
    ModuleSpec("parent-join", "parent-join-client", "org/opensearch/join/ParentJoin",
               "This module adds the support parent-child queries and aggregations"),
)


def jar_base_name(jar: Path) -> str:
    """``lucene-core-9.12.3.jar`` -> ``lucene-core``: the artifact a jar holds, without its version."""
    return re.sub(r"-\d[^-]*(-[A-Za-z0-9.]+)?$", "", jar.stem)


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


def add_modules(home: Path, version: str, repository: Path, scratch: Path) -> None:
    """Every module of ``MODULES`` the distribution at ``home`` lacks."""
    for spec in MODULES:
        add_module(home, spec, version, repository, scratch / "modules")
