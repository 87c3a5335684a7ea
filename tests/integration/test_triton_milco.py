"""MILCO served by a real tritonserver (CPU, tiny checkpoint) and the TritonEncoder client."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from milco_os import __version__
from milco_os.index.fields import EN_FIELD, M_FIELD, vector_fields
from milco_os.model import MilcoEncoder
from milco_os.services.triton_server import TritonServer
from milco_os.encoding.triton_client import TritonEncoder, TritonUnavailableError
from milco_os.encoding.served_model import CHECKPOINT_PARAMETER, served_version
from milco_os.encoding.fingerprint import checkpoint_sha256
from milco_os.serving.triton_repository import export_repository, model_config
from tests.commands import run_cli
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["Berlin ist die Hauptstadt", "", "東京タワーは東京にある", "القاهرة هي عاصمة مصر",
         "🚀 search!!!", "Быстрая лиса " * 40]


def assert_same(a, b) -> None:
    for ids_a, w_a, ids_b, w_b in ((a.en_ids, a.en_weights, b.en_ids, b.en_weights),
                                   (a.m_ids, a.m_weights, b.m_ids, b.m_weights)):
        da, db = dict(zip(ids_a.tolist(), w_a.tolist())), dict(zip(ids_b.tolist(), w_b.tolist()))
        assert da.keys() == db.keys()
        assert max((abs(da[k] - db[k]) for k in da), default=0.0) <= 1e-5


@pytest.fixture(scope="module")
def milco_server(tiny_checkpoint: Path, tmp_path_factory) -> TritonServer:
    """An exported repository served with this checkout's ``milco_os`` out of the way: the server starts in a
    folder holding a ``milco_os`` that refuses to be imported, and the backend's Python puts its working folder
    first on its path (before the installed packages), so the model loads only if it runs its own code."""
    repository = tmp_path_factory.mktemp("milco-repo")
    export_repository(tiny_checkpoint, repository, device="cpu", max_batch_size=16)
    shadow = tmp_path_factory.mktemp("shadow")
    (shadow / "milco_os").mkdir()
    (shadow / "milco_os" / "__init__.py").write_text('raise ImportError("a milco_os outside the repository")\n')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(shadow)
        server = TritonServer(repository, log_file=repository / "tritonserver.log").start()
    try:
        yield server
    finally:
        server.stop()


def test_committed_config_is_the_exported_default() -> None:
    assert (REPO_ROOT / "triton_models" / "milco" / "config.pbtxt").read_text() == model_config()


def test_the_model_runs_the_code_of_its_repository(milco_server: TritonServer) -> None:
    repository = milco_server.model_repository
    log = milco_server.log_file.read_text(encoding="utf-8", errors="replace")
    loaded = re.findall(r"model 'milco' runs milco-os (\S+) code from (\S+)", log)
    assert loaded, log[-3000:]
    version, code = loaded[-1]
    assert version == __version__ and Path(code) == repository / "milco" / "1" / "milco_os"
    assert (Path(code) / "serving" / "triton_backend.py").is_file()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_the_served_configuration_records_the_version_and_checkpoint(
        milco_server: TritonServer, tiny_checkpoint: Path, protocol: str) -> None:
    if protocol == "grpc":
        client = triton_grpc.InferenceServerClient(milco_server.grpc_url)
        config = client.get_model_config("milco", as_json=True)["config"]
    else:
        client = triton_http.InferenceServerClient(milco_server.http_url)
        config = client.get_model_config("milco")
    client.close()
    assert served_version(config) == __version__
    assert config["parameters"][CHECKPOINT_PARAMETER]["string_value"] == checkpoint_sha256(tiny_checkpoint)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("settings", [{}, {"prune": "topk:7"}, {"prune": "e=mass:0.5", "echo": False},
                                      {"max_length": 16}])
def test_triton_equals_in_process(milco_server: TritonServer, tiny_encoder: MilcoEncoder, protocol: str,
                                  settings: dict) -> None:
    url = milco_server.grpc_url if protocol == "grpc" else milco_server.http_url
    remote = TritonEncoder(url, protocol=protocol, texts_per_request=4)
    assert remote.vocabulary == tiny_encoder.vocabulary
    assert remote.fingerprint == tiny_encoder.fingerprint and len(remote.fingerprint) == 64  # one model, both ways
    for a, b in zip(remote.encode(TEXTS, **settings), tiny_encoder.encode(TEXTS, **settings)):
        assert_same(a, b)


def test_concurrent_clients_get_their_own_vectors(milco_server: TritonServer, tiny_encoder: MilcoEncoder) -> None:
    failures: list[str] = []

    def client(thread: int) -> None:
        encoder = TritonEncoder(milco_server.grpc_url, texts_per_request=5, max_in_flight=2)
        texts = [f"{TEXTS[(thread + n) % len(TEXTS)]} {thread} {n}" for n in range(50)]
        for text, got, want in zip(texts, encoder.encode(texts), tiny_encoder.encode(texts)):
            try:
                assert_same(got, want)
            except AssertionError:
                failures.append(f"thread {thread}: {text!r}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


def test_bad_requests_get_errors_and_the_server_stays_healthy(milco_server: TritonServer) -> None:
    client = triton_http.InferenceServerClient(milco_server.http_url)

    def infer(name: str, data: np.ndarray):
        tensor = triton_http.InferInput(name, list(data.shape), "BYTES")
        tensor.set_data_from_numpy(data)
        return client.infer("milco", [tensor], outputs=[triton_http.InferRequestedOutput("EN_COUNT")])

    with pytest.raises(InferenceServerException, match="text 0 is not valid UTF-8"):
        infer("TEXT", np.array([[b"caf\xe9"]], dtype=np.object_))
    with pytest.raises(InferenceServerException):
        infer("TEXT", np.zeros((0, 1), dtype=np.object_))
    with pytest.raises(InferenceServerException, match="WRONG"):
        infer("WRONG", np.array([[b"hello"]], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="parameter prune"):
        tensor = triton_http.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[b"hello"]], dtype=np.object_))
        client.infer("milco", [tensor], parameters={"prune": "topk:0"})
    assert client.is_server_live() and client.is_model_ready("milco")
    assert infer("TEXT", np.array([[b"hello"]], dtype=np.object_)).as_numpy("EN_COUNT")[0, 0] > 0


def kserve_infer(server: TritonServer, body: dict) -> requests.Response:
    """A KServe-v2 JSON call as an OpenSearch ml-commons connector makes it."""
    return requests.post(f"http://{server.http_url}/v2/models/milco/infer", json=body, timeout=60)


@pytest.mark.parametrize("parameters", [{}, {"view": "m"}, {"view": "en", "prune": "topk:7"},
                                        {"view": "m", "max_length": "16"}])
def test_sparse_json_holds_the_keys_and_weights_the_bulk_writer_stores(milco_server: TritonServer,
                                                                       tiny_encoder: MilcoEncoder,
                                                                       parameters: dict) -> None:
    body = {"inputs": [{"name": "TEXT", "shape": [len(TEXTS), 1], "datatype": "BYTES", "data": TEXTS}],
            "outputs": [{"name": "SPARSE_JSON"}], "parameters": parameters}
    response = kserve_infer(milco_server, body)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert (output["name"], output["shape"]) == ("SPARSE_JSON", [len(TEXTS), 1])
    field = M_FIELD if parameters.get("view") == "m" else EN_FIELD
    max_length = int(parameters["max_length"]) if "max_length" in parameters else None
    vectors = tiny_encoder.encode(TEXTS, prune=parameters.get("prune", "none"), max_length=max_length)
    for text, got, vector in zip(TEXTS, output["data"], vectors):
        want = vector_fields(vector, tiny_encoder.vocabulary).get(field, {})
        got = json.loads(got)
        assert got.keys() == want.keys(), text
        assert all(abs(got[key] - want[key]) <= 1e-6 * max(1.0, want[key]) for key in want), text


def test_sparse_json_refuses_an_unknown_view(milco_server: TritonServer) -> None:
    body = {"inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["hello"]}],
            "outputs": [{"name": "SPARSE_JSON"}], "parameters": {"view": "fr"}}
    response = kserve_infer(milco_server, body)
    assert response.status_code != 200 and "parameter view must be en or m, not 'fr'" in response.text


def test_encode_command_prints_the_same_json_through_triton(milco_server: TritonServer, tiny_checkpoint: Path):
    def run(*encoder_args: str) -> list[dict]:
        result = run_cli("encode", *encoder_args, "--prune", "topk:6", *TEXTS[:4], timeout=120)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    remote, local = run("--triton-url", milco_server.grpc_url), run("--model", str(tiny_checkpoint))
    assert [line["text"] for line in remote] == [line["text"] for line in local]
    for a, b in zip(remote, local):
        assert a["terms"].keys() == b["terms"].keys()
        assert all(abs(a["terms"][k] - b["terms"][k]) <= 1e-5 for k in a["terms"])


def test_unreachable_server_is_a_clear_error_naming_the_url() -> None:
    started = time.monotonic()
    with pytest.raises(TritonUnavailableError, match="Triton at 127.0.0.1:1 .*unreachable"):
        TritonEncoder("127.0.0.1:1", unavailable_timeout_s=0.5, backoff_s=0.1)
    assert time.monotonic() - started < 30


def test_server_killed_mid_run_raises_after_retries(tiny_checkpoint: Path, tmp_path: Path) -> None:
    export_repository(tiny_checkpoint, tmp_path / "repo", device="cpu", reference=True)
    server = TritonServer(tmp_path / "repo", log_file=tmp_path / "triton.log").start()
    encoder = TritonEncoder(server.grpc_url, unavailable_timeout_s=2, backoff_s=0.2, texts_per_request=2, timeout_s=10)
    outcome: dict[str, BaseException] = {}
    encoded: list[int] = []

    def run() -> None:
        try:
            for call in range(200):
                encoder.encode(TEXTS * 5)
                encoded.append(call)
        except BaseException as exc:  # the test inspects whatever ends the run
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        wait_for(lambda: encoded or not worker.is_alive(), timeout=120,
                 what="the client's first answer from the server")
        assert worker.is_alive(), f"the run ended before the kill: {outcome.get('error')!r}"
        server.process.kill()
        worker.join(timeout=120)
    finally:
        server.stop()
    assert not worker.is_alive(), "the client hung after the server died"
    assert isinstance(outcome.get("error"), TritonUnavailableError)
    assert server.grpc_url in str(outcome["error"])
