"""Provisioning a runnable Elasticsearch from Maven Central artifacts.

The ``integ-test-zip`` distribution is a minimal Elasticsearch without a bundled JDK,
without the root endpoint and without ingest processors. On 7.x the ``mapper-extras``
module (``rank_features``, ``rank_feature``) is added from its client jar; from 8.x no
such jar is published, so those nodes offer the built-in ``sparse_vector`` field instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from milco_os.services import maven
from milco_os.services.java import JavaHome, find_java
from milco_os.services.opensearch_dist import assemble_zip, major_version

DEFAULT_VERSION = "8.19.21"
RANK_FEATURES_VERSION = "7.17.29"
LAYOUT_REVISION = "1"
MAPPER_EXTRAS_CLASS = "org.elasticsearch.index.mapper.MapperExtrasPlugin"


def distribution_artifact(version: str) -> maven.Artifact:
    return maven.Artifact("org.elasticsearch.distribution.integ-test-zip", "elasticsearch", version, "zip")


def java_for(version: str) -> JavaHome:
    """Elasticsearch 7.17 and 8.x need the SecurityManager (Java 17-23); 9.x needs Java 21+."""
    if major_version(version) >= 9:
        return find_java(21, 99, f"Elasticsearch {version}")
    return find_java(17, 23, f"Elasticsearch {version}")


def mapper_extras_descriptor(version: str) -> str:
    entries = {"description": "Adds advanced field mappers (rank_feature, rank_features, ...)", "version": version,
               "name": "mapper-extras", "classname": MAPPER_EXTRAS_CLASS, "java.version": "1.8",
               "elasticsearch.version": version, "extended.plugins": "", "has.native.controller": "false"}
    return "".join(f"{key}={value}\n" for key, value in entries.items())


def add_mapper_extras(home: Path, version: str, repository: Path) -> None:
    """The mapper-extras module of a 7.x distribution: its client jar and a descriptor."""
    module = home / "modules" / "mapper-extras"
    if module.is_dir():
        return
    jar = maven.fetch(maven.Artifact("org.elasticsearch.plugin", "mapper-extras-client", version), repository)
    module.mkdir(parents=True)
    shutil.copy2(jar, module / jar.name)
    (module / "plugin-descriptor.properties").write_text(mapper_extras_descriptor(version), encoding="utf-8")


def install(version: str, *, repository: Path, installs: Path) -> Path:
    """A ready Elasticsearch home for ``version`` under ``installs`` (downloaded and assembled once)."""
    def add_modules(extracted: Path, scratch: Path) -> None:
        if major_version(version) < 8:
            add_mapper_extras(extracted, version, repository)

    return assemble_zip(lambda: maven.fetch(distribution_artifact(version), repository),
                        installs / f"elasticsearch-{version}", f"{version} {LAYOUT_REVISION}", add_modules)
