"""A local OpenSearch node with ml-commons and neural-search: the cluster encodes with a remote MILCO model.

The plugins are the release zips from Maven Central, installed in dependency order
(job-scheduler, k-NN, ml-commons, neural-search) with the distribution's own
``opensearch-plugin`` into a separate copy of the distribution. Maven Central serves the
complete stack for a few OpenSearch versions only (``ML_VERSIONS``). The k-NN zip carries
no native libraries: only Lucene-engine ``knn_vector`` fields work on such a node.
"""

from __future__ import annotations

from pathlib import Path

from milco_os.services import maven
from milco_os.services.java import JavaHome
from milco_os.services.plugin_copy import with_plugins

ML_VERSIONS = ("3.6.0", "2.19.1")
ML_DEFAULT_VERSION = ML_VERSIONS[0]
PLUGINS = ("opensearch-job-scheduler", "opensearch-knn", "opensearch-ml-plugin", "neural-search")
LOOPBACK_ENDPOINTS = r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?/.*$"


def plugin_artifacts(version: str) -> list[maven.Artifact]:
    return [maven.Artifact("org.opensearch.plugin", name, f"{version}.0", "zip") for name in PLUGINS]


def install(home: Path, version: str, *, repository: Path, java: JavaHome) -> Path:
    """A copy of the distribution at ``home`` with the ml-commons and neural-search stack installed (made once)."""
    return with_plugins(home, "ml", [maven.fetch(artifact, repository) for artifact in plugin_artifacts(version)],
                        java)


def node_settings() -> dict[str, object]:
    """``opensearch.yml`` settings that let a single dev node call a model server on loopback."""
    return {
        "plugins.ml_commons.only_run_on_ml_node": False,
        "plugins.ml_commons.trusted_connector_endpoints_regex": [LOOPBACK_ENDPOINTS],
        "plugins.ml_commons.connector.private_ip_enabled": True,
        # A dev node shares its machine: memory breakers would refuse to deploy remote models under load.
        "plugins.ml_commons.native_memory_threshold": 100,
        "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    }
