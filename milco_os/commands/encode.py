"""``milco-os encode``: texts in, one JSON object of named MILCO terms per text out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from milco_os.commands.options import EncoderChoice, encoder_options, prune_option
from milco_os.encoding.pruning import PruneSpec


@click.command("encode")
@encoder_options
@prune_option
@click.option("--max-length", type=click.IntRange(min=2), default=None, help="Token limit (default: the model's).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Texts per batch [default: the encoder's: 32 on a CPU, 128 on a GPU, per request on Triton].")
@click.option("--no-echo", is_flag=True, help="Leave out the LexEcho source-language terms.")
@click.argument("texts", nargs=-1)
def encode(encoder_choice: EncoderChoice, prune: PruneSpec,
           max_length: int | None, batch_size: int | None, no_echo: bool, texts: tuple[str, ...]) -> None:
    """Print {"text": ..., "terms": {...}} per TEXT (or per stdin line), terms heaviest first."""
    inputs = list(texts) if texts else [line.rstrip("\n") for line in sys.stdin]
    encoder = encoder_choice.load()
    vectors = encoder.encode(inputs, max_length=max_length, batch_size=batch_size, prune=prune, echo=not no_echo)
    for text, vector in zip(inputs, vectors):
        click.echo(json.dumps({"text": text, "terms": vector.terms(encoder.vocabulary)}, ensure_ascii=False))


@click.command("tiny-checkpoint")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True)
def tiny_checkpoint(directory: Path, seed: int) -> None:
    """Write a tiny random MILCO checkpoint in the released layout (for trying the tool; rankings are meaningless)."""
    from milco_os.model.tiny import make_tiny_checkpoint

    click.echo(str(make_tiny_checkpoint(directory, seed=seed)))
