"""``milco-os setup``, ``ingest`` and ``search``: MILCO indices on a cluster."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from milco_os.commands.encode import parse_prune
from milco_os.index.vector_fields import VECTOR_FIELDS
from milco_os.errors import MilcoOsError
from milco_os.commands.connection import Connection, connection_options
from milco_os.commands.encoder_options import check_encoder_choice, encoder_options, load_encoder
from milco_os.commands.notices import NoticePrinter, unavailable_timeout_option
from milco_os.commands.seismic import SEARCH_FLAGS as SEISMIC_SEARCH_FLAGS
from milco_os.commands.seismic import jsonl_texts, seismic_index_options, seismic_parameters, seismic_search
from milco_os.commands.seismic import search_flags as seismic_search_flags

index_option = click.option("--index", required=True, help="Index name.")
vector_field_option = click.option(
    "--vector-field", type=click.Choice(list(VECTOR_FIELDS)), default=None,
    help="Field type of new indices' vectors [default: rank_features]; sparse_vector needs Elasticsearch 8.11+; "
         "seismic (approximate search) OpenSearch 3.3+ with neural-search. Recorded in the mapping's _meta, so "
         "search picks the matching query.")

bulk_concurrency_option = click.option(
    "--bulk-concurrency", default=2, show_default=True, type=click.IntRange(min=1),
    help="Bulk requests in flight while the next batch encodes (a shard writes one request on one thread).")
vectors_in_source_option = click.option(
    "--vectors-in-source/--vectors-out-of-source", default=None,
    help="Keep the vectors in new indices' _source [default: kept; reindex: as in SOURCE]. Out of _source the "
         "index is smaller, but search --explain cannot list term contributions, and the cluster's own _update, "
         "_update_by_query and _reindex rewrite documents from _source, without their vectors: re-encode with "
         "milco-os reindex or enrich instead.")


def has_milco_fields(client, index: str) -> bool:
    """True when ``index`` exists with MILCO fields (its vector field and parameters are chosen already)."""
    if not client.indices.exists(index=index):
        return False
    from milco_os.engines import engine_for
    from milco_os.index.handle import stored_mapping

    return "milco_os" in (stored_mapping(engine_for(client), index).get("_meta") or {})


def parse_pruning_config(ctx: click.Context, param: click.Parameter, value: str | None) -> dict | None:
    """``RATIO:WEIGHT`` as Elasticsearch's sparse_vector ``pruning_config``."""
    if value is None:
        return None
    try:
        ratio, weight = (float(part) for part in value.split(":"))
    except ValueError:
        raise click.BadParameter(f"'{value}' is not RATIO:WEIGHT (e.g. 5:0.4)") from None
    return {"tokens_freq_ratio_threshold": ratio, "tokens_weight_threshold": weight, "only_score_pruned_tokens": False}


@click.command("setup")
@connection_options
@index_option
@click.option("--passages", is_flag=True, help="Nested per-passage vectors for long documents.")
@click.option("--shards", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--replicas", default=1, show_default=True, type=click.IntRange(min=0))
@vector_field_option
@seismic_index_options
@vectors_in_source_option
@encoder_options
def setup(connection: Connection, index: str, passages: bool, shards: int, replicas: int,
          vector_field: str | None, seismic_flags: dict, vectors_in_source: bool | None, model: str | None,
          triton_url: str | None, triton_model: str, triton_protocol: str) -> None:
    """Create a MILCO index from mappings/ (a no-op when a compatible one exists).

    A seismic index's quantisation ceilings are measured with the encoder (--model or
    --triton-url) on the sample corpus, unless --quantization-ceilings gives them.
    """
    from milco_os.index.setup import ensure_index

    client = connection.client()
    creating = not has_milco_fields(client, index)
    encoder = load_encoder(model, triton_url, triton_model, triton_protocol) \
        if creating and vector_field == "seismic" and (model or triton_url) else None
    seismic = seismic_parameters(seismic_flags, vector_field, creating=creating, encoder=encoder)
    handle, outcome = ensure_index(client, index, passages=passages, shards=shards, replicas=replicas,
                                   vector_type=vector_field, seismic=seismic, vectors_in_source=vectors_in_source)
    click.echo(f"index {index}: {outcome}")
    if seismic:
        click.echo(f"seismic quantisation ceilings (ingest:search): English {seismic.en_ceilings.ingest}:"
                   f"{seismic.en_ceilings.search}, LexEcho {seismic.m_ceilings.ingest}:{seismic.m_ceilings.search}")


@click.command("ingest")
@connection_options
@index_option
@encoder_options
@click.option("--prune", default="none", show_default=True, callback=parse_prune, help="Document pruning spec.")
@click.option("--text-field", default="text", show_default=True)
@click.option("--id-field", default="id", show_default=True)
@click.option("--routing-field", default=None, help="Field whose value routes each document to its shard.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@bulk_concurrency_option
@click.option("--max-length", type=click.IntRange(min=2), default=None, help="Token limit (default: the model's).")
@click.option("--passages", is_flag=True, help="Split texts into token windows, one vector each (nested).")
@click.option("--passage-tokens", default=512, show_default=True, type=click.IntRange(min=3))
@click.option("--passage-overlap", default=0, show_default=True, type=click.IntRange(min=0))
@click.option("--dead-letter", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="JSONL file for refused documents (default: FILE.dead-letter.jsonl); the checkpoint lives "
                   "beside it.")
@click.option("--resume", is_flag=True, help="Go on after the last line a previous, interrupted run wrote.")
@unavailable_timeout_option
@vector_field_option
@seismic_index_options
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def ingest(connection: Connection, index: str, model: str | None,
           triton_url: str | None, triton_model: str, triton_protocol: str, prune, text_field: str,
           id_field: str, routing_field: str | None, batch_size: int, bulk_concurrency: int, max_length: int | None,
           passages: bool,
           passage_tokens: int, passage_overlap: int, dead_letter: Path | None, resume: bool, unavailable_timeout: float,
           vector_field: str | None, seismic_flags: dict, file: Path) -> None:
    """Encode FILE.jsonl and write it into INDEX with MILCO vectors; exit 1 when anything was refused.

    Progress is checkpointed after every written batch; a run stopped by an outage
    (exit 4 for the cluster, 7 for Triton) goes on with --resume.
    """
    from milco_os.index.setup import ensure_index
    from milco_os.pipeline.checkpoints import FileCheckpoint
    from milco_os.pipeline.dead_letters import DeadLetters
    from milco_os.pipeline.ingest import IngestOptions, Ingestor
    from milco_os.pipeline.sources import JsonlSource

    check_encoder_choice(model, triton_url)
    client = connection.client()  # a wrong URL or password fails here, before a model is loaded
    encoder = load_encoder(model, triton_url, triton_model, triton_protocol, unavailable_timeout_s=unavailable_timeout)
    if passages and encoder.tokenizer is None:
        raise click.UsageError("--passages splits texts with the model's tokenizer: use --model DIR")
    seismic = seismic_parameters(seismic_flags, vector_field, creating=not has_milco_fields(client, index),
                                 encoder=encoder, prune=prune, sample=lambda: jsonl_texts(file, text_field))
    handle, _ = ensure_index(client, index, passages=passages, vector_type=vector_field, seismic=seismic)
    options = IngestOptions(text_field=text_field, batch_size=batch_size, prune=prune, max_length=max_length,
                            model_name=encoder.name, passages=passages, passage_tokens=passage_tokens,
                            passage_overlap=passage_overlap, unavailable_timeout_s=unavailable_timeout,
                            bulk_concurrency=bulk_concurrency)
    dead_letter = dead_letter or file.with_suffix(".dead-letter.jsonl")
    checkpoint_path = dead_letter.with_suffix(".checkpoint.json")
    checkpoint = FileCheckpoint.load_or_new(checkpoint_path, file, index, resume)
    total = sum(1 for line in file.open("rb") if line.strip())
    console = Console(stderr=True)
    if checkpoint.line:
        console.print(f"resuming after line {checkpoint.line} of {file}", markup=False, highlight=False)
    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with dead_letter.open("a" if resume else "w", encoding="utf-8") as stream, \
            Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("ingest", total=total)
        notices = NoticePrinter(progress.console)
        letters = DeadLetters(stream, on_entry=notices)
        letters.count = sum(1 for _ in dead_letter.open(encoding="utf-8")) if resume else 0
        ingestor = Ingestor(handle, encoder, options, letters, on_progress=lambda n: progress.advance(task, n),
                            on_batch_done=lambda report: checkpoint.advance(report, checkpoint_path))
        source = JsonlSource(file, id_field=id_field, routing_field=routing_field, start_after=checkpoint.line,
                             on_notice=notices)
        try:
            summary = ingestor.run(source)
        except MilcoOsError:
            console.print(f"progress saved in {checkpoint_path}: once the service is back, run the same "
                          "command with --resume", markup=False, highlight=False, soft_wrap=True)
            raise
        finally:
            notices.finish(str(dead_letter))
    handle.client.indices.refresh(index=index)
    checkpoint_path.unlink(missing_ok=True)
    click.echo(json.dumps(summary.as_dict()), err=True)
    warn_clipped(summary.clipped, handle)
    if letters.count:
        click.echo(f"{letters.count} document(s) refused: see {dead_letter}", err=True)
        sys.exit(1)
    dead_letter.unlink(missing_ok=True)


def warn_clipped(clipped: int, handle) -> None:
    """Say how many documents hold a weight the index clips (SEISMIC's ingest ceiling), and what to do."""
    if clipped:
        index = handle.field.index
        click.echo(f"warning: {clipped} document(s) have weights above the index's quantisation ceilings "
                   f"(English {index.en_ceilings.ingest}, LexEcho {index.m_ceilings.ingest}): approximate search "
                   "counts those weights as the ceiling; reindex into an index with higher --quantization-ceilings "
                   "to keep them", err=True)


search_flags = (
    click.option("--no-echo", is_flag=True, help="Leave out LexEcho source-language terms."),
    click.option("--echo-weight", default=1.0, show_default=True, type=click.FloatRange(min=0)),
    click.option("--query-prune", default="none", show_default=True, callback=parse_prune),
    click.option("--two-phase/--exact", default=None,
                 help="Two-phase: the heaviest terms retrieve, the rest rescore the top window; exact: every term "
                      "retrieves [default: two-phase on indices of 50,000 documents or more, exact below]."),
    click.option("--first-phase-terms", default=16, show_default=True, type=click.IntRange(min=1),
                 help="Two-phase: how many of the heaviest query terms retrieve."),
    click.option("--window", default=1000, show_default=True, type=click.IntRange(min=1),
                 help="Two-phase: how many of the first phase's top documents the other terms rescore."),
    click.option("--passages", is_flag=True, help="Score documents by their best passage."),
    click.option("--bm25-weight", default=0.0, show_default=True, type=click.FloatRange(min=0)),
    click.option("--sparse-vector-pruning", "pruning_config", default=None, callback=parse_pruning_config,
                 metavar="RATIO:WEIGHT", help="sparse_vector indices (Elasticsearch): prune query tokens with "
                                              "this pruning_config (scores then approximate the dot product)."),
    click.option("--query-style", type=click.Choice(["rank_feature", "neural_sparse"]), default="rank_feature",
                 show_default=True, help="neural_sparse: neural-search's query (OpenSearch with neural-search)."),
    click.option("--cluster-encodes", "cluster_models", default=None, metavar="NAME",
                 help="The cluster encodes the query with the models of 'opensearch-ml install --name NAME' "
                      "(implies --query-style neural_sparse; no --model needed)."),
    click.option("--search-pipeline", default=None,
                 help="Run the search through this search pipeline (e.g. NAME-two-phase from 'opensearch-ml "
                      "install')."),
    *seismic_search_flags,
)
SEARCH_FLAGS = ("no_echo", "echo_weight", "query_prune", "two_phase", "first_phase_terms", "window", "passages",
                "bm25_weight", "pruning_config", "query_style", "cluster_models", "search_pipeline",
                *SEISMIC_SEARCH_FLAGS)


def search_options(command):
    """The options that shape a MILCO query, shared by ``search`` and ``eval``; the command receives them as one
    ``search_flags`` dict."""
    @functools.wraps(command)
    def with_flags(*args, **kwargs):
        flags = {name: kwargs.pop(name) for name in SEARCH_FLAGS}
        return command(*args, search_flags=flags, **kwargs)

    for option in reversed(search_flags):
        with_flags = option(with_flags)
    return with_flags


def options_from_flags(client, size: int, flags: dict, explain: bool = False):
    """SearchOptions from the shared flags (remote model ids looked up by installation name)."""
    from milco_os.cluster_ml.installer import installed_model_ids
    from milco_os.search.searcher import NEURAL_SPARSE, SearchOptions

    cluster_models = installed_model_ids(client, flags["cluster_models"]) if flags["cluster_models"] else None
    try:
        return SearchOptions(size=size, echo=not flags["no_echo"], echo_weight=flags["echo_weight"],
                             query_prune=str(flags["query_prune"]), two_phase=flags["two_phase"],
                             first_phase_terms=flags["first_phase_terms"], window=flags["window"],
                             passages=flags["passages"], bm25_weight=flags["bm25_weight"], explain=explain,
                             pruning_config=flags["pruning_config"],
                             query_style=NEURAL_SPARSE if cluster_models else flags["query_style"],
                             cluster_models=cluster_models, search_pipeline=flags["search_pipeline"],
                             seismic=seismic_search(flags))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def check_query_encoder(flags: dict, model: str | None, triton_url: str | None) -> None:
    """A usage error unless the query encoder is named once: the cluster's, or --model or --triton-url."""
    if flags["cluster_models"]:
        if model or triton_url:
            raise click.UsageError("--cluster-encodes: the cluster encodes the query; leave out --model/--triton-url")
        return
    check_encoder_choice(model, triton_url)


def query_encoder(flags: dict, model: str | None, triton_url: str | None, triton_model: str, triton_protocol: str):
    """The encoder for queries, or None when the cluster encodes them."""
    check_query_encoder(flags, model, triton_url)
    return None if flags["cluster_models"] else load_encoder(model, triton_url, triton_model, triton_protocol)


@click.command("search")
@connection_options
@index_option
@encoder_options
@click.option("--top-k", default=10, show_default=True, type=click.IntRange(min=1))
@search_options
@click.option("--explain", is_flag=True, help="Show each hit's per-term contributions.")
@click.option("--format", "output", type=click.Choice(["json", "table"]), default="table", show_default=True)
@click.argument("query")
def search(connection: Connection, index: str, model: str | None, triton_url: str | None, triton_model: str,
           triton_protocol: str, top_k: int, search_flags: dict, explain: bool, output: str, query: str) -> None:
    """Search INDEX for QUERY by the MILCO dot product."""
    from milco_os.index.handle import open_index
    from milco_os.search.searcher import search as run_search

    check_query_encoder(search_flags, model, triton_url)
    client = connection.client()  # a wrong URL or password fails here, before a model is loaded
    handle = open_index(client, index)
    encoder = query_encoder(search_flags, model, triton_url, triton_model, triton_protocol)
    # The table lists matched terms where the index stores the vectors to read them from.
    options = options_from_flags(client, top_k, search_flags,
                                 explain=explain or (output == "table" and handle.vectors_in_source))
    try:
        hits = run_search(handle, encoder, query, options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if output == "json":
        click.echo(json.dumps({"hits": [
            {"id": hit.id, "score": hit.score, **({"terms": hit.terms} if explain else {})} for hit in hits
        ]}, ensure_ascii=False))
        return
    table = Table("id", "score", "top matched terms", title=f"query: {query}", title_justify="left")
    for hit in hits:
        table.add_row(hit.id, f"{hit.score:.4f}", ", ".join(f"{n} {v:.2f}" for n, v in list(hit.terms.items())[:5]))
    Console().print(table)
