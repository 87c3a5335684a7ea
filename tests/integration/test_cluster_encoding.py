"""OpenSearch encodes with MILCO itself (ml-commons connector to a real tritonserver, neural-search), on every
OpenSearch version Maven Central serves the plugin stack for.

The ground truth is the in-process encoder on the same tiny checkpoint: documents written
with plain index calls must hold its vectors, ``neural_sparse`` queries must rank by its
exact dot product, and milco-os bulk writes must sit beside cluster-encoded documents
unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from contextlib import ExitStack
from typing import Iterator

import pytest
from opensearchpy import OpenSearch, helpers
from opensearchpy.exceptions import TransportError

from milco_os.cluster_ml.bodies import MlInstallation, connector_body, model_body, search_pipeline_body
from milco_os.cluster_ml.installer import ML, MlCommons, delete_connector
from milco_os.encoding.sparse import SparseVector
from milco_os.index.fields import EN_FIELD, M_FIELD, vector_fields
from milco_os.index.handle import open_index
from milco_os.index.model_record import ModelRecord
from milco_os.index.setup import ensure_index
from milco_os.model import MilcoEncoder
from milco_os.pipeline.dead_letters import DeadLetters
from milco_os.pipeline.ingest import IngestOptions, Ingestor
from milco_os.pipeline.sources import DictSource
from milco_os.sample_corpus import sample_dir
from milco_os.search.searcher import NEURAL_SPARSE, SearchOptions, search
from milco_os.serving.triton_repository import export_repository
from milco_os.services.opensearch_ml_plugins import ML_DEFAULT_VERSION, ML_VERSIONS
from milco_os.services.temporary_node import temporary_node
from milco_os.services.triton_server import TritonServer
from tests.commands import run_cli

pytestmark = pytest.mark.integration

NAME = "milco-test"
PRUNE = "topk:48"
INDEX = "cluster-encoded"


@pytest.fixture(scope="module")
def triton(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    repository = tmp_path_factory.mktemp("cluster-triton")
    export_repository(tiny_checkpoint, repository, device="cpu", max_batch_size=64)
    with TritonServer(repository, log_file=repository / "tritonserver.log") as server:
        yield server


@pytest.fixture(scope="module", params=ML_VERSIONS)
def ml_node(request: pytest.FixtureRequest) -> Iterator[OpenSearch]:
    """A node with ml-commons and neural-search per version: the suite's shared one for the default version."""
    with ExitStack() as stack:
        node = request.getfixturevalue("shared_ml_node") if request.param == ML_DEFAULT_VERSION else \
            stack.enter_context(temporary_node(version=request.param, ml=True))
        client = OpenSearch(hosts=[node.url], timeout=120)
        yield client
        client.close()


def install(client: OpenSearch, triton: TritonServer, *args: str) -> subprocess.CompletedProcess:
    url = client.transport.hosts[0]
    return run_cli("opensearch-ml", "install", "--url", f"http://{url['host']}:{url['port']}", "--triton-url",
                   f"http://{triton.http_url}", *args)


def corpus() -> list[dict]:
    lines = (sample_dir() / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    return [{"id": doc["_id"], "text": doc["text"]} for doc in map(json.loads, lines)]


def queries(count: int = 12) -> list[str]:
    lines = (sample_dir() / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines[::len(lines) // count]][:count]


@pytest.fixture(scope="module")
def installed(ml_node: OpenSearch, triton: TritonServer) -> dict:
    """The installation's ids, and an index whose default pipeline encodes, filled with plain index calls."""
    result = install(ml_node, triton, "--name", NAME, "--prune", PRUNE, "--index", INDEX, "--default-pipeline")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    ml_node.indices.put_settings(index=INDEX, body={"index.number_of_replicas": 0})
    documents = corpus()
    helpers.bulk(ml_node, ({"_index": INDEX, "_id": doc["id"], "_source": doc} for doc in documents),
                 chunk_size=100, request_timeout=300)
    ml_node.indices.refresh(index=INDEX)
    return report


@pytest.fixture(scope="module")
def expected(tiny_encoder: MilcoEncoder) -> dict[str, SparseVector]:
    documents = corpus()
    vectors = tiny_encoder.encode([doc["text"] for doc in documents], prune=PRUNE)
    return {doc["id"]: vector for doc, vector in zip(documents, vectors)}


def assert_same_fields(stored: dict, wanted: dict, where: str) -> None:
    for field in (EN_FIELD, M_FIELD):
        got, want = stored.get(field) or {}, wanted.get(field) or {}
        assert got.keys() == want.keys(), (where, field)
        assert all(abs(got[key] - want[key]) <= 5e-3 * want[key] for key in want), (where, field)


def test_plain_index_calls_get_the_in_process_vectors(ml_node: OpenSearch, installed: dict,
                                                      tiny_encoder: MilcoEncoder,
                                                      expected: dict[str, SparseVector]) -> None:
    hits = {hit["_id"]: hit["_source"] for hit in helpers.scan(ml_node, index=INDEX)}
    assert hits.keys() == expected.keys()
    for doc_id, source in hits.items():
        assert_same_fields(source, vector_fields(expected[doc_id], tiny_encoder.vocabulary), doc_id)
        meta = source["milco_meta"]
        assert (meta["model"], meta["prune"]) == ("triton:milco", PRUNE)
        assert meta["model_revision"] == tiny_encoder.fingerprint  # read from the served model by the install
        assert meta["text_hash"] == hashlib.sha256(source["text"].encode("utf-8")).hexdigest()
        assert meta["encoded_at"]


def exact_top(query: SparseVector, documents: dict[str, SparseVector], echo: bool) -> list[tuple[float, str]]:
    if not echo:
        query = SparseVector(query.en_ids, query.en_weights, query.m_ids[:0], query.m_weights[:0])
    return sorted(((query.dot(vector), doc_id) for doc_id, vector in documents.items()), reverse=True)


@pytest.mark.parametrize("echo", [True, False])
def test_neural_sparse_query_text_ranks_by_the_exact_dot_product(ml_node: OpenSearch, installed: dict,
                                                                 tiny_encoder: MilcoEncoder,
                                                                 expected: dict[str, SparseVector],
                                                                 echo: bool) -> None:
    index = open_index(ml_node, INDEX)
    options = SearchOptions(size=10, echo=echo, query_style=NEURAL_SPARSE, cluster_models=installed["model_ids"])
    for text in queries():
        hits = search(index, None, text, options)
        # The cluster encodes the query with the installation's models: the connector's pruning applies.
        exact = exact_top(tiny_encoder.encode([text], prune=PRUNE)[0], expected, echo)
        assert len(hits) == 10
        for rank, hit in enumerate(hits):
            true_score = next(score for score, doc_id in exact if doc_id == hit.id)
            assert hit.score == pytest.approx(true_score, rel=1e-2), text
            # Near-ties within rank_features' precision may swap places, nothing more.
            assert true_score == pytest.approx(exact[rank][0], rel=1e-2), text


@pytest.fixture(scope="module")
def whole_window_pipeline(ml_node: OpenSearch) -> str:
    """The installed two-phase pipeline with a window over the whole corpus: it must give the full ranking."""
    body = search_pipeline_body()
    body["request_processors"][0]["neural_sparse_two_phase_processor"]["two_phase_parameter"]["expansion_rate"] = \
        float(len(corpus()))
    ml_node.transport.perform_request("PUT", "/_search/pipeline/whole-window", body=body)
    return "whole-window"


def test_query_tokens_and_the_two_phase_pipeline_score_the_full_dot_product(
        ml_node: OpenSearch, installed: dict, whole_window_pipeline: str, tiny_encoder: MilcoEncoder,
        expected: dict[str, SparseVector]) -> None:
    index = open_index(ml_node, INDEX)
    for text in queries():
        full = search(index, tiny_encoder, text, SearchOptions(size=10))
        ranking = [(hit.id, round(hit.score, 2)) for hit in full]
        tokens = search(index, tiny_encoder, text, SearchOptions(size=10, query_style=NEURAL_SPARSE))
        assert [(hit.id, round(hit.score, 2)) for hit in tokens] == ranking, text
        # The installed pipeline's window may miss documents; every score it returns is the full dot product.
        query = tiny_encoder.encode([text], max_length=64)[0]
        for hit in search(index, tiny_encoder, text, SearchOptions(
                size=10, query_style=NEURAL_SPARSE, search_pipeline=installed["search_pipeline"])):
            assert hit.score == pytest.approx(query.dot(expected[hit.id]), rel=1e-2), text
        whole = search(index, tiny_encoder, text, SearchOptions(
            size=10, query_style=NEURAL_SPARSE, search_pipeline=whole_window_pipeline))
        assert [hit.id for hit in whole] == [hit_id for hit_id, _ in ranking], text
        cluster_full = search(index, None, text, SearchOptions(
            size=10, query_style=NEURAL_SPARSE, cluster_models=installed["model_ids"]))
        cluster_whole = search(index, None, text, SearchOptions(
            size=10, query_style=NEURAL_SPARSE, cluster_models=installed["model_ids"],
            search_pipeline=whole_window_pipeline))
        assert [hit.id for hit in cluster_whole] == [hit.id for hit in cluster_full], text


def test_search_and_eval_let_the_cluster_encode_the_query(ml_node: OpenSearch, installed: dict,
                                                         whole_window_pipeline: str) -> None:
    url = ml_node.transport.hosts[0]
    common = ("--url", f"http://{url['host']}:{url['port']}", "--index", INDEX, "--cluster-encodes", NAME)
    text = queries()[0]
    result = run_cli("search", *common, "--search-pipeline", whole_window_pipeline, "--format", "json", text)
    assert result.returncode == 0, result.stderr
    library = search(open_index(ml_node, INDEX), None, text, SearchOptions(
        size=10, query_style=NEURAL_SPARSE, cluster_models=installed["model_ids"]))
    assert [hit["id"] for hit in json.loads(result.stdout)["hits"]] == [hit.id for hit in library]
    scored = run_cli("eval", *common, "--queries", str(sample_dir() / "queries.jsonl"), "--qrels",
                     str(sample_dir() / "qrels" / "test.tsv"), "--metrics", "recall@100")
    assert scored.returncode == 0, scored.stderr
    assert "R@100" in scored.stdout
    unknown = run_cli("search", *common[:4], "--cluster-encodes", "nobody", text)
    assert unknown.returncode == 1 and "The cluster has no model nobody-en" in unknown.stderr


def test_the_index_records_the_served_model_and_a_search_of_another_is_refused(
        ml_node: OpenSearch, installed: dict, tiny_encoder: MilcoEncoder) -> None:
    assert open_index(ml_node, INDEX).model == ModelRecord("triton:milco", tiny_encoder.fingerprint)
    other = f"{INDEX}-other-model"
    ensure_index(ml_node, other, replicas=0, model=ModelRecord("milco-other", "f" * 64))
    try:
        url = ml_node.transport.hosts[0]
        refused = run_cli("search", "--url", f"http://{url['host']}:{url['port']}", "--index", other,
                          "--cluster-encodes", NAME, "Berlin")
        assert refused.returncode == 12, refused.stderr
        assert f"triton:milco ({tiny_encoder.fingerprint[:12]})" in refused.stderr and "milco-other" in refused.stderr
    finally:
        ml_node.indices.delete(index=other)


def test_bulk_writer_documents_sit_beside_cluster_encoded_ones(ml_node: OpenSearch, installed: dict,
                                                               tiny_encoder: MilcoEncoder) -> None:
    documents = [{"id": f"bridge-{doc['id']}", "text": doc["text"]} for doc in corpus()[:40]]
    options = IngestOptions(prune=PRUNE, model_name="triton:milco", batch_size=20)
    summary = Ingestor(open_index(ml_node, INDEX), tiny_encoder, options, DeadLetters(None)).run(
        DictSource(documents))
    assert (summary.written, summary.failed) == (len(documents), 0)
    ml_node.indices.refresh(index=INDEX)
    for doc in documents:
        bridged = ml_node.get(index=INDEX, id=doc["id"])["_source"]
        clustered = ml_node.get(index=INDEX, id=doc["id"].removeprefix("bridge-"))["_source"]
        assert_same_fields(bridged, clustered, doc["id"])
        assert {key: bridged["milco_meta"][key] for key in ("model", "prune", "text_hash")} == \
            {key: clustered["milco_meta"][key] for key in ("model", "prune", "text_hash")}


def falsely_kept_connectors(ml: MlCommons, outcomes: dict[str, str]) -> set[str]:
    """Ids of the connectors an uninstall left because ml-commons 2.x counted other connectors' models as their users
    (see ``delete_connector``), after checking that every model it named does use another connector."""
    kept = set()
    for key, outcome in outcomes.items():
        if outcome == "removed":
            continue
        connector = re.fullmatch(r"connector \S+ \((\S+)\)", key)
        named = re.search(r"as using it \(([^)]+)\), but none of them does", outcome)
        assert connector and named, (key, outcome)
        assert all(ml.model_connector(model_id) != connector.group(1) for model_id in named.group(1).split(", "))
        kept.add(connector.group(1))
    return kept


def test_install_is_idempotent_and_uninstall_leaves_nothing(ml_node: OpenSearch, triton: TritonServer) -> None:
    first = install(ml_node, triton, "--name", "milco-idem")
    assert first.returncode == 0, first.stderr
    again = install(ml_node, triton, "--name", "milco-idem")
    assert again.returncode == 0, again.stderr
    assert set(json.loads(again.stdout)["actions"].values()) == {"exists"}
    assert json.loads(again.stdout)["model_ids"] == json.loads(first.stdout)["model_ids"]
    url = ml_node.transport.hosts[0]
    removed = run_cli("opensearch-ml", "uninstall", "--url", f"http://{url['host']}:{url['port']}", "--name",
                      "milco-idem")
    assert removed.returncode == 0, removed.stderr
    outcomes = json.loads(removed.stdout)
    assert len(outcomes) == 7  # two pipelines, two models, two connectors, the model group
    ml = MlCommons(ml_node)
    kept = falsely_kept_connectors(ml, outcomes)
    for kind, name in (("connectors", "milco-idem-en"), ("connectors", "milco-idem-m"), ("models", "milco-idem-en"),
                       ("models", "milco-idem-m"), ("model_groups", "milco-idem")):
        assert {found["_id"] for found in ml.find(kind, name)} <= kept, (kind, name)
    for path in ("/_ingest/pipeline/milco-idem-encode", "/_search/pipeline/milco-idem-two-phase"):
        with pytest.raises(TransportError) as missing:
            ml_node.transport.perform_request("GET", path)
        assert missing.value.status_code == 404


def test_a_closed_port_and_a_bad_request_parameter_each_give_one_clear_error(ml_node: OpenSearch,
                                                                              triton: TritonServer) -> None:
    url = ml_node.transport.hosts[0]
    closed = run_cli("opensearch-ml", "install", "--url", f"http://{url['host']}:{url['port']}", "--triton-url",
                     "http://127.0.0.1:9", "--name", "milco-closed")
    assert closed.returncode == 6
    assert "could not encode through Triton at http://127.0.0.1:9/v2/models/milco/infer" in closed.stderr
    assert "Traceback" not in closed.stderr
    run_cli("opensearch-ml", "uninstall", "--url", f"http://{url['host']}:{url['port']}", "--name", "milco-closed")

    ml = MlCommons(ml_node)
    installation = MlInstallation(triton_url=f"http://{triton.http_url}", name="milco-badview")
    body = connector_body(installation, "en")
    body["parameters"]["view"] = "fr"
    connector_id = ml.request("POST", f"{ML}/connectors/_create", body)["connector_id"]
    group_id = ml.request("POST", f"{ML}/model_groups/_register", {"name": "milco-badview"})["model_group_id"]
    model_id = ml.request("POST", f"{ML}/models/_register",
                          model_body(installation, "en", connector_id, group_id))["model_id"]
    try:
        ml.deploy(model_id)
        with pytest.raises(TransportError, match="Error from remote service: .*parameter view must be en or m, not"):
            ml.predict(model_id, ["hello"])
    finally:
        ml.request("POST", f"{ML}/models/{model_id}/_undeploy")
        ml.request("DELETE", f"{ML}/models/{model_id}")
        falsely_kept_connectors(ml, {f"connector milco-badview-en ({connector_id})": delete_connector(ml, connector_id)})
        ml.request("DELETE", f"{ML}/model_groups/{group_id}")


def test_writes_fail_naming_the_model_while_triton_is_down_and_succeed_again_after(
        ml_node: OpenSearch, installed: dict, triton: TritonServer, tiny_encoder: MilcoEncoder) -> None:
    triton.stop()
    try:
        with pytest.raises(TransportError) as refused:
            ml_node.index(index=INDEX, id="while-down", body={"text": "Berlin ist die Hauptstadt"})
        assert f"MILCO model {NAME}-en ({installed['model_ids']['en']}" in str(refused.value.info)
        assert ml_node.exists(index=INDEX, id="while-down") is False  # nothing half-written
    finally:
        triton.start()
    ml_node.index(index=INDEX, id="after", body={"text": "Berlin ist die Hauptstadt"}, refresh=True)
    stored = ml_node.get(index=INDEX, id="after")["_source"]
    wanted = vector_fields(tiny_encoder.encode(["Berlin ist die Hauptstadt"], prune=PRUNE)[0],
                           tiny_encoder.vocabulary)
    assert_same_fields(stored, wanted, "after")


def test_a_cluster_without_the_plugins_is_named_in_one_error(opensearch_url: str) -> None:
    result = run_cli("opensearch-ml", "install", "--url", opensearch_url, "--triton-url", "http://127.0.0.1:9")
    assert result.returncode == 6
    assert "lacks the ml-commons plugin (opensearch-ml) and the neural-search plugin" in result.stderr
