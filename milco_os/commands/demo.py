"""``milco-os demo``: start a local node, index the sample corpus with MILCO vectors, run a few queries."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from milco_os.paths import cache_dir
from milco_os.services.opensearch_node import NodeSettings, OpenSearchNode
from milco_os.services.ports import free_port
from milco_os.services.service_user import service_user, services_root

SAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "bench" / "data" / "demo_corpus.jsonl"


@click.command("demo")
@click.option("--model", default=None, help="MILCO checkpoint directory (default: a tiny random one).")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=SAMPLE_CORPUS,
              show_default=True, help="JSONL with id and text fields.")
@click.option("--doc-prune", default="topk:64", show_default=True)
@click.option("--query-prune", default="topk:64", show_default=True)
@click.option("--query", "queries", multiple=True, help="Query to run (repeatable; default: a multilingual set).")
def demo(model: str | None, corpus: Path, doc_prune: str, query_prune: str, queries: tuple[str, ...]) -> None:
    """End to end on local services; the node is stopped and removed afterwards."""
    from milco_os import demo as steps
    from milco_os.model import MilcoEncoder
    from milco_os.testing import make_tiny_checkpoint

    console = Console()
    if model is None:
        model = str(make_tiny_checkpoint(cache_dir() / "demo" / "tiny-milco", seed=0))
        console.print("[yellow]No --model given: using a tiny random MILCO checkpoint. The data path is real; "
                      "the rankings are meaningless.[/yellow]")
    encoder = MilcoEncoder.from_pretrained(model)
    runtime = Path(tempfile.mkdtemp(prefix="demo-", dir=services_root(service_user())))
    node = OpenSearchNode(runtime, NodeSettings(http_port=free_port()))
    console.print(f"Starting OpenSearch on {node.url} ...")
    node.start()
    try:
        client = steps.OpenSearch(hosts=[node.url])
        console.print(f"OpenSearch {client.info()['version']['number']} is green.")
        documents = steps.read_jsonl(corpus)
        steps.create_index(client, "milco-demo")
        indexed = steps.index_documents(client, "milco-demo", documents, encoder, doc_prune)
        console.print(f"Indexed {indexed} documents from {corpus.name} (pruning {doc_prune}).")
        for query in queries or steps.DEMO_QUERIES:
            table = Table("id", "score", "text", "top matched terms", title=f"query: {query}", title_justify="left")
            for hit in steps.search(client, "milco-demo", encoder, query, query_prune, size=3):
                terms = ", ".join(f"{name} {value:.2f}" for name, value in hit.matched.items())
                table.add_row(hit.doc_id, f"{hit.score:.3f}", hit.text[:60], terms)
            console.print(table)
        client.close()
    finally:
        node.stop()
        shutil.rmtree(runtime, ignore_errors=True)
        console.print("OpenSearch node stopped.")
