"""``milco-os demo``: start a local node, index the sample corpus with MILCO vectors, run a few queries."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click
from rich.console import Console
from rich.table import Table

from milco_os.paths import cache_dir
from milco_os.sample_corpus import sample_dir
from milco_os.services.temporary_node import temporary_node

if TYPE_CHECKING:
    from milco_os.encoding.triton_client import TritonEncoder

DEMO_INDEX = "milco-demo"
DEMO_QUERIES = ("What is the capital of Germany?", "Was ist die Hauptstadt von Japan?", "столица Египта",
                "フランスの首都", "ما هي عاصمة كندا؟", "capital de Perú")


@contextmanager
def served_encoder(model: Path, console: Console) -> Iterator[TritonEncoder]:
    """An encoder calling a local tritonserver that serves ``model`` until the block ends."""
    from milco_os.encoding.triton_client import TritonEncoder
    from milco_os.services.triton_server import TritonServer
    from milco_os.serving.triton_repository import export_repository

    scratch_root = cache_dir() / "demo"
    scratch_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="triton-", dir=scratch_root) as scratch:
        repository = Path(scratch) / "triton-models"
        export_repository(model, repository, device="auto", reference=True)
        console.print("Starting tritonserver with the MILCO model ...")
        with TritonServer(repository, log_file=Path(scratch) / "tritonserver.log") as triton:
            console.print(f"Triton serves the encoder on {triton.grpc_url} (gRPC).")
            yield TritonEncoder(triton.grpc_url)
        console.print("tritonserver stopped.")


@click.command("demo")
@click.option("--model", default=None, help="MILCO checkpoint directory (default: a tiny random one).")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSONL with _id (or id) and text fields [default: the bundled sample corpus].")
@click.option("--doc-prune", default="topk:64", show_default=True)
@click.option("--query-prune", default="topk:64", show_default=True)
@click.option("--query", "queries", multiple=True, help="Query to run (repeatable; default: a multilingual set).")
@click.option("--in-process", is_flag=True, help="Encode in this process instead of on a local Triton server.")
def demo(model: str | None, corpus: Path | None, doc_prune: str, query_prune: str, queries: tuple[str, ...],
         in_process: bool) -> None:
    """End to end on local services (OpenSearch node, Triton serving the encoder); both stop afterwards."""
    from milco_os.cluster import make_client
    from milco_os.index.setup import ensure_index
    from milco_os.pipeline.dead_letters import DeadLetters
    from milco_os.pipeline.ingest import IngestOptions, Ingestor
    from milco_os.pipeline.sources import JsonlSource
    from milco_os.model import MilcoEncoder
    from milco_os.encoding.pruning import PruneSpec
    from milco_os.search.searcher import SearchOptions, search
    from milco_os.model.tiny import make_tiny_checkpoint

    console = Console()
    corpus = corpus or sample_dir() / "corpus.jsonl"
    if model is None:
        model = str(make_tiny_checkpoint(cache_dir() / "demo" / "tiny-milco", seed=0))
        console.print("[yellow]No --model given: using a tiny random MILCO checkpoint. The data path is real; "
                      "the rankings are meaningless.[/yellow]")
    console.print("Starting an OpenSearch node ...")
    with temporary_node() as node, ExitStack() as services:
        if in_process:
            encoder = MilcoEncoder.from_pretrained(model)
        else:
            encoder = services.enter_context(served_encoder(Path(model), console))
        client = make_client(node.url)
        console.print(f"OpenSearch {client.info()['version']['number']} is green at {node.url}.")
        index, _ = ensure_index(client, DEMO_INDEX, replicas=0)
        options = IngestOptions(prune=PruneSpec.parse(doc_prune), model_name=encoder.name)
        summary = Ingestor(index, encoder, options, DeadLetters(None)).run(JsonlSource(corpus, id_field="_id"))
        client.indices.refresh(index=DEMO_INDEX)
        console.print(f"Indexed {summary.written} documents from {corpus.name} (pruning {doc_prune}).")
        for query in queries or DEMO_QUERIES:
            table = Table("id", "score", "text", "top matched terms", title=f"query: {query}", title_justify="left")
            for hit in search(index, encoder, query,
                              SearchOptions(size=3, query_prune=query_prune, explain=True)):
                terms = ", ".join(f"{name} {value:.2f}" for name, value in list(hit.terms.items())[:4])
                table.add_row(hit.id, f"{hit.score:.3f}", hit.source["text"][:60], terms)
            console.print(table)
        client.close()
    console.print("OpenSearch node stopped.")
