"""A real Triton Inference Server: the standalone ``tritonserver`` binary shipped in the nvidia-pytriton wheel.

The wheel carries the server, the Python backend and one backend stub per Python
version. This module lays out a backend directory from them, gives the server the
environment the stub needs (this interpreter's libpython and ``bin``), starts it
on loopback ports and waits until every model of the repository is ready.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Callable

import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from milco_os.errors import MissingToolError, ServiceError
from milco_os.paths import cache_dir
from milco_os.services.ports import LOOPBACK, free_port, require_free_port
from milco_os.services.processes import log_tail, stop_popen, wait_until

READY_TIMEOUT_S = 120.0
DEFAULT_EXIT_TIMEOUT_S = 15


@dataclass(frozen=True)
class TritonInstall:
    """The pieces of Triton inside the installed nvidia-pytriton wheel."""

    root: Path

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "backends" / "python"

    def stub(self) -> Path:
        return self.root / "python_backend_stubs" / f"{sys.version_info.major}.{sys.version_info.minor}" / (
            "triton_python_backend_stub"
        )


def find_install() -> TritonInstall:
    """Locate ``tritonserver`` in the nvidia-pytriton wheel, with a clear error when it is missing."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise MissingToolError(
            "The Triton server binary comes from the 'nvidia-pytriton' package, which is not installed.",
            hint="pip install 'nvidia-pytriton==0.7.0' (it is a milco-os dependency; reinstall milco-os).",
        )
    install = TritonInstall(Path(next(iter(spec.submodule_search_locations))) / "tritonserver")
    for required in (install.binary, install.python_backend / "libtriton_python.so", install.stub()):
        if not required.is_file():
            raise MissingToolError(
                f"The nvidia-pytriton install lacks {required}.",
                hint="reinstall nvidia-pytriton 0.7.0 for this Python version on Linux x86_64.",
            )
    return install


def backend_directory(install: TritonInstall, root: Path) -> Path:
    """A ``--backend-directory`` whose ``python/`` links to the wheel's backend and this Python's stub."""
    python_dir = root / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    links = {
        "libtriton_python.so": install.python_backend / "libtriton_python.so",
        "triton_python_backend_utils.py": install.python_backend / "triton_python_backend_utils.py",
        "triton_python_backend_stub": install.stub(),
    }
    for name, target in links.items():
        link = python_dir / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return root


def server_environment() -> dict[str, str]:
    """The environment the Python backend stub needs: this interpreter's libpython and ``bin`` first."""
    env = dict(os.environ)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def model_names(model_repository: Path) -> list[str]:
    """The models of a repository: its sub-folders that hold a ``config.pbtxt``."""
    if not model_repository.is_dir():
        raise ServiceError(f"The model repository {model_repository} does not exist or is not a folder.")
    names = sorted(p.name for p in model_repository.iterdir() if (p / "config.pbtxt").is_file())
    if not names:
        raise ServiceError(
            f"The model repository {model_repository} holds no model (no <name>/config.pbtxt).",
            hint="point --model-repository at a folder with one sub-folder per model.",
        )
    return names


class TritonServer:
    """A ``tritonserver`` process serving one model repository on loopback ports."""

    def __init__(
        self,
        model_repository: Path,
        *,
        host: str = LOOPBACK,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        log_file: Path | None = None,
        exit_timeout_s: int = DEFAULT_EXIT_TIMEOUT_S,
    ) -> None:
        self.model_repository = model_repository.resolve()
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.log_file = log_file or cache_dir() / "triton" / f"tritonserver-{self.http_port}.log"
        self.exit_timeout_s = exit_timeout_s
        self.process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    def command(self, install: TritonInstall, backends: Path) -> list[str]:
        return [
            str(install.binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={self.exit_timeout_s}",
        ]

    def start(self, timeout: float = READY_TIMEOUT_S,
              interrupted: Callable[[], bool] = lambda: False) -> TritonServer:
        """Launch the server and wait until every model of the repository is ready (or ``interrupted()``)."""
        names = model_names(self.model_repository)
        install = find_install()
        for port, what in ((self.http_port, "HTTP"), (self.grpc_port, "gRPC"), (self.metrics_port, "metrics")):
            require_free_port(port, f"Triton server ({what} endpoint)", self.host)
        backends = backend_directory(install, cache_dir() / "triton" / "backends")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(install, backends),
                env=server_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        client = triton_http.InferenceServerClient(self.http_url, connection_timeout=5, network_timeout=5)
        try:
            wait_until(
                lambda: interrupted() or all(self._model_ready(client, name) for name in names),
                timeout=timeout,
                what=f"Triton server on {self.http_url} (models: {', '.join(names)})",
                alive=lambda: self.process is not None and self.process.poll() is None,
                log=self.log_file,
            )
        except ServiceError:
            self.stop()
            raise
        finally:
            client.close()
        return self

    def server_metadata(self) -> dict:
        """The server's ``/v2`` metadata (name, version, extensions)."""
        client = triton_http.InferenceServerClient(self.http_url)
        try:
            return client.get_server_metadata()
        finally:
            client.close()

    def stop(self) -> int | None:
        """Ask the server to exit (SIGTERM), kill it if it outlasts its exit timeout; returns its exit code."""
        if self.process is None:
            return None
        code = stop_popen(self.process, grace=self.exit_timeout_s + 10, first_signal=signal.SIGTERM)
        # Python-backend stubs outlive a server that died abruptly: end its whole process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        return code

    def tail(self) -> str:
        return log_tail(self.log_file)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @staticmethod
    def _model_ready(client: triton_http.InferenceServerClient, name: str) -> bool:
        try:
            return client.is_model_ready(name)
        except (InferenceServerException, OSError):
            return False
