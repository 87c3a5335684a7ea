"""``milco-os triton``: serve a Triton model repository with the real ``tritonserver`` binary."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from milco_os.errors import ServiceError
from milco_os.services.ports import LOOPBACK
from milco_os.services.triton_server import READY_TIMEOUT_S, TritonServer
from milco_os.serving.export_record import repository_warnings


@click.group("triton")
def triton() -> None:
    """Triton Inference Server: serve MILCO model repositories."""


@triton.command("serve")
@click.option("--model-repository", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path), help="Triton model repository.")
@click.option("--host", default=LOOPBACK, show_default=True, help="Address every endpoint binds to.")
@click.option("--http-port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--grpc-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
@click.option("--metrics-port", default=8002, show_default=True, type=click.IntRange(1, 65535))
@click.option("--timeout", default=READY_TIMEOUT_S, show_default=True, type=float,
              help="Seconds to wait for every model to be ready.")
def serve(model_repository: Path, host: str, http_port: int, grpc_port: int, metrics_port: int,
          timeout: float) -> None:
    """Run tritonserver in the foreground until Ctrl-C or SIGTERM, then stop it cleanly."""
    server = TritonServer(model_repository, host=host, http_port=http_port, grpc_port=grpc_port,
                          metrics_port=metrics_port)
    # The handler only sets a flag: an exception raised from it could land inside the HTTP client's
    # event loop (gevent) and be swallowed there, leaving the server running.
    stop_requested = threading.Event()
    handlers = {signum: signal.signal(signum, lambda *_: stop_requested.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        for warning in repository_warnings(model_repository):
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"Starting tritonserver on {host} (log: {server.log_file}) ...", err=True)
        server.start(timeout=timeout, interrupted=stop_requested.is_set)
        if not stop_requested.is_set():
            version = server.server_metadata().get("version", "?")
            click.echo(f"Triton {version} ready: HTTP {server.http_url}, gRPC {server.grpc_url}, "
                       f"metrics {server.metrics_url}. Ctrl-C stops it.", err=True)
        while not stop_requested.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                raise ServiceError("tritonserver exited unexpectedly.", log_tail=server.tail())
        click.echo("Stopping tritonserver ...", err=True)
    finally:
        code = server.stop()  # a second Ctrl-C or SIGTERM only sets the flag again: the stop is not abandoned
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    click.echo(f"tritonserver stopped (exit code {code}).", err=True)


def parse_ids(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """``0,1`` -> (0, 1); empty -> (); not given -> None."""
    if value is None:
        return None
    try:
        return tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from exc


@triton.command("export")
@click.option("--model", "checkpoint", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="MILCO checkpoint directory.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Model repository.")
@click.option("--name", default="milco", show_default=True, help="Model name in the repository.")
@click.option("--device", type=click.Choice(["auto", "gpu", "cpu"]), default="auto", show_default=True,
              help="Instance kind (auto: GPUs when the server has some).")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(min=1),
              help="Model instances (per listed GPU with --gpus).")
@click.option("--gpus", default="", callback=parse_ids, help="GPU ids for the instances, e.g. 0,1 (--device gpu).")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=None,
              help="Texts per model execution [default: 128 with --device gpu, else 64].")
@click.option("--preferred-batch-sizes", default=None, callback=parse_ids,
              help="Batch sizes the scheduler waits for, e.g. 32,64,128 [default: those with --device gpu].")
@click.option("--queue-delay-us", default=2000, show_default=True, type=click.IntRange(min=0),
              help="How long a request may wait for others to batch with.")
@click.option("--precision", default="auto", show_default=True,
              help="Weights' dtype on the instance: auto (bf16 on a GPU, fp32 on a CPU), fp32, tf32, bf16 or fp16.")
@click.option("--prune", default="none", show_default=True, help="Default pruning spec (requests may override).")
@click.option("--reference", is_flag=True, help="Point at the checkpoint's absolute path instead of copying it.")
def export(checkpoint: Path, out: Path, name: str, device: str, instances: int, gpus: tuple[int, ...],
           max_batch_size: int | None, preferred_batch_sizes: tuple[int, ...] | None, queue_delay_us: int,
           precision: str, prune: str, reference: bool) -> None:
    """Write a ready Triton model repository serving the checkpoint."""
    from milco_os.serving.triton_repository import export_repository

    try:
        model_dir = export_repository(checkpoint, out, name=name, device=device, instances=instances, gpus=gpus,
                                      max_batch_size=max_batch_size, preferred_batch_sizes=preferred_batch_sizes,
                                      queue_delay_us=queue_delay_us, precision=precision, prune=prune,
                                      reference=reference)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(str(model_dir))
