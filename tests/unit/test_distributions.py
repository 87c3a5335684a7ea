import json
import stat
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from milco_os.cli import main
from milco_os.errors import ServiceError
from milco_os.services.distribution_zip import extract_zip
from milco_os.services.distributions import DISTRIBUTIONS, ELASTICSEARCH, OPENSEARCH, Distribution
from milco_os.services.java import JavaHome
from milco_os.services.maven import Artifact
from milco_os.services.opensearch_modules import (
    MODULES,
    jar_base_name,
    plugin_class_in,
    plugin_descriptor,
    read_properties,
)
from milco_os.services.opensearch_ml_plugins import ML_VERSIONS
from milco_os.services.opensearch_security import BasicAuthUser
from milco_os.services.search_node import ClusterLayout, NodeSettings, node_yaml, runtime_jvm_options


def make_jar(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as jar:
        for name in names:
            jar.writestr(name, b"\xca\xfe")
    return path


@pytest.mark.parametrize(
    "plugin_class",
    ["org.opensearch.index.mapper.MapperExtrasPlugin", "org.opensearch.index.mapper.MapperExtrasModulePlugin"],
)
def test_plugin_class_is_read_from_the_jar(tmp_path: Path, plugin_class: str) -> None:
    jar = make_jar(tmp_path / "m.jar", ["org/opensearch/index/mapper/RankFeatureFieldMapper.class",
                                        plugin_class.replace(".", "/") + ".class"])
    assert plugin_class_in(jar, "org/opensearch/index/mapper/MapperExtras") == plugin_class


def test_jar_without_plugin_class_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no"):
        plugin_class_in(make_jar(tmp_path / "m.jar", ["a/B.class"]), "org/opensearch/painless/Painless")


def test_descriptor_round_trips_through_the_properties_reader(tmp_path: Path) -> None:
    path = tmp_path / "plugin-descriptor.properties"
    ingest_common = next(spec for spec in MODULES if spec.folder == "ingest-common")
    path.write_text(plugin_descriptor(ingest_common, "x.Y", "2.19.6", "11"))
    properties = read_properties(path)
    assert properties["name"] == "ingest-common"
    assert properties["extended.plugins"] == "lang-painless"
    assert properties["classname"] == "x.Y"
    assert properties["opensearch.version"] == properties["version"] == "2.19.6"
    assert properties["java.version"] == "11"


def test_extract_zip_keeps_executable_bits(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        script = zipfile.ZipInfo("dist/bin/run")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        bundle.writestr(script, "#!/bin/sh\n")
        bundle.writestr("dist/config/x.yml", "a: 1\n")
    extract_zip(archive, tmp_path / "out")
    assert (tmp_path / "out/dist/bin/run").stat().st_mode & 0o111
    assert (tmp_path / "out/dist/config/x.yml").read_text() == "a: 1\n"


def test_artifact_path_follows_the_maven_layout(tmp_path: Path) -> None:
    artifact = Artifact("org.opensearch.distribution.integ-test-zip", "opensearch", "2.19.6", "zip")
    assert artifact.coordinates == "org.opensearch.distribution.integ-test-zip:opensearch:2.19.6:zip"
    assert artifact.path_in(tmp_path) == (
        tmp_path / "org/opensearch/distribution/integ-test-zip/opensearch/2.19.6/opensearch-2.19.6.zip"
    )


def test_jvm_options_paths_become_absolute(tmp_path: Path) -> None:
    options = ("-XX:HeapDumpPath=data\n-XX:ErrorFile=logs/hs_err_pid%p.log\n"
               "9-:-Xlog:gc*:file=logs/gc.log:utctime\n")
    rewritten = runtime_jvm_options(options, tmp_path)
    assert f"-XX:HeapDumpPath={tmp_path}/data" in rewritten
    assert f"-XX:ErrorFile={tmp_path}/logs/hs_err_pid%p.log" in rewritten
    assert f"file={tmp_path}/logs/gc.log" in rewritten
    assert "=logs/" not in rewritten


def test_node_yaml_binds_loopback_and_takes_extra_settings(tmp_path: Path) -> None:
    text = node_yaml(NodeSettings(http_port=9333, extra={"thread_pool.write.queue_size": "2"}), 9444, tmp_path)
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert lines["network.host"] == '"127.0.0.1"'
    assert lines["http.port"] == "9333" and lines["transport.port"] == "9444"
    assert lines["discovery.type"] == '"single-node"'
    assert lines["thread_pool.write.queue_size"] == '"2"'


@pytest.mark.parametrize(("engine", "managers"), [("opensearch", "cluster.initial_cluster_manager_nodes"),
                                                  ("elasticsearch", "cluster.initial_master_nodes")])
def test_a_cluster_members_yaml_finds_every_member_on_loopback(tmp_path: Path, engine: str, managers: str) -> None:
    layout = ClusterLayout("milco-os-dev-9200", ((9200, 9300), (9201, 9301), (9202, 9302)))
    text = node_yaml(NodeSettings(engine=engine, http_port=9201, cluster=layout), 9301, tmp_path)
    lines = dict(line.split(": ", 1) for line in text.splitlines())
    assert "discovery.type" not in lines
    assert lines["cluster.name"] == '"milco-os-dev-9200"' and lines["node.name"] == '"milco-os-9201"'
    assert json.loads(lines["discovery.seed_hosts"]) == ["127.0.0.1:9300", "127.0.0.1:9301", "127.0.0.1:9302"]
    assert json.loads(lines[managers]) == ["milco-os-9200", "milco-os-9201", "milco-os-9202"]
    assert lines["http.port"] == "9201" and lines["transport.port"] == "9301"


@pytest.mark.parametrize(("name", "base"), [
    ("lucene-core-9.12.3.jar", "lucene-core"), ("jackson-dataformat-cbor-2.18.8.jar", "jackson-dataformat-cbor"),
    ("opensearch-2.19.6.jar", "opensearch"), ("zstd-jni-1.5.5-5.jar", "zstd-jni"), ("asm-9.7.jar", "asm"),
    ("antlr4-runtime-4.13.1.jar", "antlr4-runtime"), ("compiler-0.9.14.jar", "compiler"),
])
def test_jar_base_name_drops_the_version(name: str, base: str) -> None:
    assert jar_base_name(Path(name)) == base


@pytest.mark.parametrize(("engine", "group"), [("opensearch", "org.opensearch.distribution.integ-test-zip"),
                                               ("elasticsearch", "org.elasticsearch.distribution.integ-test-zip")])
def test_each_engine_is_its_integ_test_zip(engine: str, group: str) -> None:
    artifact = DISTRIBUTIONS[engine].artifact("1.2.3")
    assert artifact.coordinates == f"{group}:{engine}:1.2.3:zip"


@pytest.mark.parametrize(("distribution", "version", "java_range"), [
    (OPENSEARCH, "2.19.6", (11, 23)), (OPENSEARCH, "3.8.0", (21, 99)),
    (ELASTICSEARCH, "7.17.29", (17, 23)), (ELASTICSEARCH, "8.19.21", (17, 23)), (ELASTICSEARCH, "9.2.4", (21, 99)),
])
def test_java_requirement_follows_the_major_version(monkeypatch: pytest.MonkeyPatch, distribution: Distribution,
                                                    version: str, java_range: tuple[int, int]) -> None:
    asked = []
    monkeypatch.setattr("milco_os.services.distributions.find_java",
                        lambda minimum, maximum, purpose: asked.append((minimum, maximum, purpose)))
    distribution.java_for(version)
    assert asked == [(*java_range, f"{distribution.display_name} {version}")]


def test_only_elasticsearch_7_gets_modules_added() -> None:
    assert OPENSEARCH.needs_modules("2.19.6") and OPENSEARCH.needs_modules("3.8.0")
    assert ELASTICSEARCH.needs_modules("7.17.29")
    assert not ELASTICSEARCH.needs_modules("8.19.21") and not ELASTICSEARCH.needs_modules("9.2.4")


@pytest.mark.parametrize(("distribution", "prefix"), [(OPENSEARCH, "OPENSEARCH"), (ELASTICSEARCH, "ES")])
def test_environment_uses_the_engine_prefix(tmp_path: Path, distribution: Distribution, prefix: str) -> None:
    env = distribution.environment(JavaHome(tmp_path / "jdk", 21), tmp_path / "config", tmp_path / "tmp", "1g")
    assert env == {"JAVA_HOME": str(tmp_path / "jdk"), f"{prefix}_JAVA_HOME": str(tmp_path / "jdk"),
                   f"{prefix}_PATH_CONF": str(tmp_path / "config"), f"{prefix}_TMPDIR": str(tmp_path / "tmp"),
                   f"{prefix}_JAVA_OPTS": "-Xms1g -Xmx1g"}


def test_settings_default_to_the_engines_version() -> None:
    assert NodeSettings().version == OPENSEARCH.default_version
    assert NodeSettings(engine="elasticsearch").version == ELASTICSEARCH.default_version
    assert NodeSettings(engine="elasticsearch", version="7.17.29").display_name == "Elasticsearch 7.17.29"


def test_elasticsearch_node_yaml_turns_x_pack_security_off(tmp_path: Path) -> None:
    elasticsearch = node_yaml(NodeSettings(engine="elasticsearch", http_port=9333), 9444, tmp_path)
    assert "xpack.security.enabled: false\n" in elasticsearch
    assert "xpack" not in node_yaml(NodeSettings(http_port=9333), 9444, tmp_path)


def test_elasticsearch_has_no_security_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "elasticsearch" / "elasticsearch-8.19.21"
    monkeypatch.setattr("milco_os.services.distributions.assemble_zip", lambda *args: home)
    with pytest.raises(ServiceError, match="no security plugins"):
        ELASTICSEARCH.install("8.19.21", repository=tmp_path / "m2", services=tmp_path, plugins="security")


def test_an_ml_node_defaults_to_a_version_maven_central_serves_the_plugin_stack_for() -> None:
    settings = NodeSettings(ml=True)
    assert settings.version == ML_VERSIONS[0] and settings.plugins == "ml"
    assert "with ml-commons and neural-search" in settings.display_name
    with pytest.raises(ServiceError, match="not both"):
        NodeSettings(ml=True, users=(BasicAuthUser("admin", "pw"),))


@pytest.mark.parametrize("arguments, message", [
    (["--ml", "--version", "3.8.0"], "for OpenSearch 3.6.0 and 2.19.1 only, not 3.8.0"),
    (["--ml", "--secure"], "choose one"),
    (["--ml", "--engine", "elasticsearch"], "use it with --engine opensearch"),
])
def test_dev_cluster_refuses_ml_nodes_it_cannot_provision(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["dev-cluster", "fetch", *arguments])
    assert result.exit_code == 2 and message in result.output
