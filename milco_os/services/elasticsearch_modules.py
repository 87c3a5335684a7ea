"""The module an Elasticsearch 7.x ``integ-test-zip`` distribution lacks, added from Maven Central.

That distribution is a minimal Elasticsearch without a bundled JDK, without the root
endpoint and without ingest processors. On 7.x the ``mapper-extras`` module
(``rank_features``, ``rank_feature``) is added from its client jar; from 8.x no such jar
is published, so those nodes offer the built-in ``sparse_vector`` field instead.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from milco_os.services import maven

RANK_FEATURES_VERSION = "7.17.29"
MAPPER_EXTRAS_CLASS = "org.elasticsearch.index.mapper.MapperExtrasPlugin"


def mapper_extras_descriptor(version: str) -> str:
    entries = {"description": "Adds advanced field mappers (rank_feature, rank_features, ...)", "version": version,
               "name": "mapper-extras", "classname": MAPPER_EXTRAS_CLASS, "java.version": "1.8",
               "elasticsearch.version": version, "extended.plugins": "", "has.native.controller": "false"}
    return "".join(f"{key}={value}\n" for key, value in entries.items())


def add_mapper_extras(home: Path, version: str, repository: Path, scratch: Path) -> None:
    """The mapper-extras module of a 7.x distribution: its client jar and a descriptor."""
    module = home / "modules" / "mapper-extras"
    if module.is_dir():
        return
    jar = maven.fetch(maven.Artifact("org.elasticsearch.plugin", "mapper-extras-client", version), repository)
    module.mkdir(parents=True)
    shutil.copy2(jar, module / jar.name)
    (module / "plugin-descriptor.properties").write_text(mapper_extras_descriptor(version), encoding="utf-8")
