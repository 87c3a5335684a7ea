"""A real tritonserver from the nvidia-pytriton wheel, called over HTTP and gRPC."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from milco_os.services.ports import free_port, is_port_free
from milco_os.services.processes import wait_until
from milco_os.services.triton_server import TritonServer
from tests.commands import milco_os_command

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXTS = ["hello", "Grüße aus Köln", "東京タワー"]
VALUES = np.array([[1.0, 2.0, 3.0], [-1.5, 0.0, 2.5], [1e-3, 4.0, 8.0]], dtype=np.float32)


def text_input(module, texts: list[str]):
    array = np.array([[text.encode("utf-8")] for text in texts], dtype=np.object_)
    tensor = module.InferInput("TEXT", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def values_input(module, values: np.ndarray):
    tensor = module.InferInput("VALUES", list(values.shape), "FP32")
    tensor.set_data_from_numpy(values)
    return tensor


def check_outputs(result) -> None:
    upper = [item.decode("utf-8") for item in result.as_numpy("UPPER").reshape(-1)]
    assert upper == [text.upper() for text in TEXTS]
    assert result.as_numpy("LENGTH").reshape(-1).tolist() == [len(text) for text in TEXTS]
    np.testing.assert_allclose(result.as_numpy("SCALED"), VALUES * 2)


def test_server_reports_its_version(triton_server: TritonServer) -> None:
    metadata = triton_server.server_metadata()
    assert metadata["name"] == "triton"
    assert metadata["version"].count(".") == 2


def test_infer_over_http(triton_server: TritonServer) -> None:
    client = triton_http.InferenceServerClient(triton_server.http_url)
    result = client.infer("text_stats", [text_input(triton_http, TEXTS), values_input(triton_http, VALUES)])
    check_outputs(result)
    client.close()


def test_infer_over_grpc(triton_server: TritonServer) -> None:
    client = triton_grpc.InferenceServerClient(triton_server.grpc_url)
    assert client.is_model_ready("text_stats")
    result = client.infer("text_stats", [text_input(triton_grpc, TEXTS), values_input(triton_grpc, VALUES)])
    check_outputs(result)
    client.close()


def test_endpoints_bind_loopback_only(triton_server: TritonServer) -> None:
    assert triton_server.host == "127.0.0.1"
    assert not is_port_free(triton_server.http_port, "127.0.0.1")


def test_serve_command_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        milco_os_command(
            "triton", "serve", "--model-repository", str(REPO_ROOT / "tests" / "triton_models"),
            "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
        ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )
    client = triton_http.InferenceServerClient(f"127.0.0.1:{http_port}")

    def ready() -> bool:
        try:
            return client.is_model_ready("text_stats")
        except Exception:  # connection refused while it starts
            return False

    try:
        wait_until(ready, timeout=120, what="milco-os triton serve", alive=lambda: process.poll() is None)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    client.close()
    assert process.returncode == 0, stderr
    assert "tritonserver stopped" in stderr
    assert all(is_port_free(port) for port in (http_port, grpc_port, metrics_port))


def test_broken_model_fails_with_its_error_in_the_log_tail(tmp_path: Path) -> None:
    model_dir = tmp_path / "repo" / "broken" / "1"
    model_dir.mkdir(parents=True)
    (model_dir.parent / "config.pbtxt").write_text(
        'name: "broken"\nbackend: "python"\nmax_batch_size: 0\n'
        'input [ { name: "X", data_type: TYPE_FP32, dims: [ 1 ] } ]\n'
        'output [ { name: "Y", data_type: TYPE_FP32, dims: [ 1 ] } ]\n'
    )
    (model_dir / "model.py").write_text(
        "class TritonPythonModel:\n"
        "    def initialize(self, args):\n"
        "        raise RuntimeError('checkpoint folder is empty: broken on purpose')\n"
    )
    server = TritonServer(tmp_path / "repo", log_file=tmp_path / "triton.log")
    with pytest.raises(Exception) as failure:
        server.start(timeout=60)
    message = str(failure.value)
    assert "broken on purpose" in message
    assert "exited before it became ready" in message or "did not become ready" in message
    assert server.process is None
