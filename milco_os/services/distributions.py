"""The search engines milco-os can run locally, in one table: what each distribution is and how it runs.

Both are the ``integ-test-zip`` distribution from Maven Central (no bundled JDK), completed
with the modules milco-os needs; everything that tells one engine from the other is a
field of its ``Distribution``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from milco_os.errors import ServiceError
from milco_os.services import (elasticsearch_modules, maven, opensearch_ml_plugins, opensearch_modules,
                               opensearch_security)
from milco_os.services.distribution_zip import assemble_zip
from milco_os.services.java import JavaHome, find_java

ModuleInstaller = Callable[[Path, str, Path, Path], None]
"""Adds modules to an extracted distribution: ``(home, version, repository, scratch)``."""


def major_version(version: str) -> int:
    return int(version.split(".", 1)[0])


@dataclass(frozen=True)
class JavaRequirement:
    """The Java majors a distribution runs on, from one of its major versions up to the next requirement's."""

    from_major: int
    minimum: int
    maximum: int = 99


@dataclass(frozen=True)
class PluginSet:
    """Plugins installed into a copy of the distribution (security; ml-commons with neural-search), the versions
    Maven Central serves them for, and the node settings they need."""

    default_version: str
    install: Callable[..., Path]
    node_settings: Callable[[], dict[str, object]]
    versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Distribution:
    """One engine: its Maven artifact, the modules to add, its JDK, and how its node is configured and launched."""

    engine: str
    display_name: str
    maven_group: str
    default_version: str
    java: tuple[JavaRequirement, ...]
    add_modules: ModuleInstaller
    layout_revision: str
    binary: str
    env_prefix: str
    config_file: str
    modules_below_major: int | None = None
    initial_managers_setting: str = "cluster.initial_master_nodes"
    node_settings: Mapping[str, object] = field(default_factory=dict)
    plugin_sets: Mapping[str, PluginSet] = field(default_factory=dict)

    def artifact(self, version: str) -> maven.Artifact:
        return maven.Artifact(self.maven_group, self.engine, version, "zip")

    def java_for(self, version: str) -> JavaHome:
        """A JDK this version runs on (requirements are listed newest first)."""
        major = major_version(version)
        requirement = next(rule for rule in self.java if major >= rule.from_major)
        return find_java(requirement.minimum, requirement.maximum, f"{self.display_name} {version}")

    def needs_modules(self, version: str) -> bool:
        return self.modules_below_major is None or major_version(version) < self.modules_below_major

    def install(self, version: str, *, repository: Path, services: Path, plugins: str = "") -> Path:
        """A ready home for ``version`` under ``services/<engine>`` (assembled once; downloads cached in
        ``repository``); with ``plugins`` (a key of ``plugin_sets``), a copy of it with that plugin set."""
        def complete(extracted: Path, scratch: Path) -> None:
            if self.needs_modules(version):
                self.add_modules(extracted, version, repository, scratch)

        home = assemble_zip(lambda: maven.fetch(self.artifact(version), repository),
                            services / self.engine / f"{self.engine}-{version}",
                            f"{version} {self.layout_revision}", complete)
        if not plugins:
            return home
        return self.plugin_set(plugins).install(home, version, repository=repository, java=self.java_for(version))

    def plugin_set(self, name: str) -> PluginSet:
        if name not in self.plugin_sets:
            raise ServiceError(f"{self.display_name} nodes have no {name} plugins here.",
                               hint="run such a node with OpenSearch.")
        return self.plugin_sets[name]

    def environment(self, java: JavaHome, config: Path, tmp: Path, heap: str) -> dict[str, str]:
        """The variables the launcher reads: JDK, config folder, temp folder and heap."""
        return {
            "JAVA_HOME": str(java.path),
            f"{self.env_prefix}_JAVA_HOME": str(java.path),
            f"{self.env_prefix}_PATH_CONF": str(config),
            f"{self.env_prefix}_TMPDIR": str(tmp),
            f"{self.env_prefix}_JAVA_OPTS": f"-Xms{heap} -Xmx{heap}",
        }


OPENSEARCH = Distribution(
    engine="opensearch",
    display_name="OpenSearch",
    maven_group="org.opensearch.distribution.integ-test-zip",
    default_version="2.19.6",
    # 2.x relies on the SecurityManager (gone in Java 24); 3.x needs Java 21+.
    java=(JavaRequirement(from_major=3, minimum=21), JavaRequirement(from_major=0, minimum=11, maximum=23)),
    add_modules=opensearch_modules.add_modules,
    layout_revision="3",
    binary="bin/opensearch",
    env_prefix="OPENSEARCH",
    config_file="opensearch.yml",
    initial_managers_setting="cluster.initial_cluster_manager_nodes",
    plugin_sets={
        "security": PluginSet(opensearch_security.SECURE_VERSION, opensearch_security.install,
                              opensearch_security.node_settings),
        "ml": PluginSet(opensearch_ml_plugins.ML_DEFAULT_VERSION, opensearch_ml_plugins.install,
                        opensearch_ml_plugins.node_settings, opensearch_ml_plugins.ML_VERSIONS),
    },
)

ELASTICSEARCH = Distribution(
    engine="elasticsearch",
    display_name="Elasticsearch",
    maven_group="org.elasticsearch.distribution.integ-test-zip",
    default_version="8.19.21",
    # 7.17 and 8.x need the SecurityManager (Java 17-23); 9.x needs Java 21+.
    java=(JavaRequirement(from_major=9, minimum=21), JavaRequirement(from_major=0, minimum=17, maximum=23)),
    add_modules=elasticsearch_modules.add_mapper_extras,
    modules_below_major=8,
    layout_revision="1",
    binary="bin/elasticsearch",
    env_prefix="ES",
    config_file="elasticsearch.yml",
    # The integ-test build carries x-pack security; a dev node runs without it, like OpenSearch's.
    node_settings={"xpack.security.enabled": False},
)

DISTRIBUTIONS: dict[str, Distribution] = {d.engine: d for d in (OPENSEARCH, ELASTICSEARCH)}
ENGINES = tuple(DISTRIBUTIONS)
