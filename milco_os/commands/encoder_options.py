"""The options every encoding command shares: an in-process checkpoint or a Triton server."""

from __future__ import annotations

from typing import Callable

import click


def encoder_options(command: Callable) -> Callable:
    options = (
        click.option("--model", envvar="MILCO_MODEL", default=None,
                     help="MILCO checkpoint directory (or Hugging Face id when the hub is reachable)."),
        click.option("--triton-url", envvar="MILCO_TRITON_URL", default=None,
                     help="Encode on these Triton servers instead of in process: host:port, several "
                          "comma-separated (each request to the least-loaded; one that stops answering is set "
                          "aside and tried again later)."),
        click.option("--triton-model", default="milco", show_default=True, help="Model name on the Triton server."),
        click.option("--triton-protocol", type=click.Choice(["grpc", "http"]), default="grpc", show_default=True),
    )
    for option in reversed(options):
        command = option(command)
    return command


def check_encoder_choice(model: str | None, triton_url: str | None) -> None:
    """A usage error unless exactly one of ``--model`` and ``--triton-url`` is given (checked before anything is
    loaded or connected)."""
    if bool(model) == bool(triton_url):
        raise click.UsageError("give exactly one of --model DIR or --triton-url URL "
                               "(or MILCO_MODEL / MILCO_TRITON_URL)")


def load_encoder(model: str | None, triton_url: str | None, triton_model: str, triton_protocol: str, *,
                 unavailable_timeout_s: float = 60.0):
    """The in-process encoder for ``--model``, or a TritonEncoder for ``--triton-url`` (one server or several,
    comma-separated): exactly one.

    When every Triton server stops answering, requests wait up to ``unavailable_timeout_s`` for one.
    """
    check_encoder_choice(model, triton_url)
    if triton_url:
        from milco_os.encoding.triton_client import TritonEncoder

        return TritonEncoder(triton_url, triton_model, triton_protocol, unavailable_timeout_s=unavailable_timeout_s)
    from milco_os.model import MilcoEncoder  # torch and transformers load only for commands that encode

    return MilcoEncoder.from_pretrained(model)
