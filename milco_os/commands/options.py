"""The command-line options commands share, each group declared once as a flag -> field table.

A group's defaults are those of the dataclass it fills (``SearchOptions``, ``IngestOptions``,
each vector field's index and search parameters), and the same table declares the click
options and builds the dataclass: a new option is one row. Choices come from the code's
own tables (``VECTOR_FIELDS``, ``QUERY_STYLES``, ``BACKENDS``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import click

from milco_os.encoding.pruning import PruneSpec
from milco_os.index.vector_fields import DEFAULT_VECTOR_FIELD, VECTOR_FIELDS, VectorField, all_index_flags, given_flags
from milco_os.parameters import Flag, ParameterGroup
from milco_os.pipeline.encode_stage import IngestOptions
from milco_os.search.fusion import COMBINATIONS, FUSIONS
from milco_os.search.hybrid import FUSE_IN
from milco_os.search.searcher import NEURAL_SPARSE, QUERY_STYLES, SearchOptions


def click_type(flag: Flag) -> click.ParamType | type:
    """The click type of a numeric or text flag, bounds included."""
    if flag.choices:
        return click.Choice(list(flag.choices))
    if flag.kind is int and (flag.minimum is not None or flag.maximum is not None):
        return click.IntRange(flag.minimum, flag.maximum, min_open=flag.min_open, max_open=flag.max_open)
    if flag.kind is float and (flag.minimum is not None or flag.maximum is not None):
        return click.FloatRange(flag.minimum, flag.maximum, min_open=flag.min_open, max_open=flag.max_open)
    return flag.kind


def parsed(flag: Flag) -> Callable | None:
    """The click callback turning a text flag into its field's value (a ValueError becomes a bad parameter)."""
    if flag.parse is None:
        return None

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return flag.parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def param_name(flag: Flag) -> str:
    """The click parameter (and ``--config`` key) of ``flag``."""
    return flag.name.replace("-", "_")


class TableOption(click.Option):
    """A click option made from a group's ``Flag``: it knows the dataclass it fills."""

    def __init__(self, *args: Any, group: ParameterGroup, flag: Flag, given_only: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group, self.flag, self.given_only = group, flag, given_only


def click_option(group: ParameterGroup, flag: Flag, *, given_only: bool = False, required: bool = False) -> Callable:
    """``flag`` of ``group`` as a click option with the dataclass's default; ``given_only``: no default of its own
    (None unless given), the dataclass's default named in the help."""
    default = group.default(flag)
    made = {"cls": TableOption, "group": group, "flag": flag, "given_only": given_only}
    shown = f" [default: {default}]" if given_only and default is not None and "[default" not in flag.help else ""
    declaration = f"{flag.option}/--{flag.off}" if flag.off else flag.option
    if flag.kind is bool:
        return click.option(declaration, param_name(flag), is_flag=True, help=flag.help + shown,
                            default=None if given_only else default, show_default=flag.off is not None, **made)
    return click.option(declaration, param_name(flag), type=click_type(flag), callback=parsed(flag), **made,
                        metavar=flag.metavar, required=required, help=flag.help + shown,
                        default=None if given_only or required else default,
                        show_default=not given_only and not required and default is not None)


def with_group(group: ParameterGroup, key: str, *, fields: tuple[str, ...] | None = None, given_only: bool = False,
               required: tuple[str, ...] = ()) -> Callable:
    """Adds ``group``'s flags (those filling ``fields``, default all) to a command, which receives them as one
    ``key`` dict of field -> value (only those given, where ``given_only``; merged with what other groups under
    the same ``key`` gave)."""
    flags = [flag for flag in group.flags if fields is None or flag.field in fields]

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def with_values(*args, **kwargs):
            values = {flag.field: kwargs.pop(param_name(flag)) for flag in flags}
            if given_only:
                values = {name: value for name, value in values.items() if value is not None}
            return command(*args, **{key: {**kwargs.pop(key, {}), **values}}, **kwargs)

        for flag in reversed(flags):
            with_values = click_option(group, flag, given_only=given_only,
                                       required=flag.field in required)(with_values)
        return with_values

    return decorate


def parse_prune(value: str) -> PruneSpec:
    return PruneSpec.parse(value)


PRUNE_HELP = "Pruning spec, e.g. topk:128, mass:0.9, percentile:95, e=topk:100,m=abs:0.1."
PRUNE = Flag("prune", "prune", kind=str, parse=parse_prune, help="Document pruning spec: " + PRUNE_HELP)

# What ingest, reindex and enrich share: how documents are encoded, batched and written.
INGEST = ParameterGroup(IngestOptions, (
    Flag("text-field", "text_field", kind=str, help="Field holding the text to encode."),
    PRUNE,
    Flag("batch-size", "batch_size", minimum=1, help="Documents encoded together and written in one bulk request."),
    Flag("bulk-concurrency", "bulk_concurrency", minimum=1,
         help="Bulk requests in flight while the next batch encodes (a shard writes one request on one thread)."),
    Flag("bulk-max-bytes", "bulk_max_bytes", minimum=1,
         help="The most bytes of one bulk request: a batch over it goes as several requests, a larger document "
              "alone."),
    Flag("unavailable-timeout", "unavailable_timeout_s", kind=float, minimum=0,
         help="Seconds to wait for a cluster or Triton server that stops answering before stopping with a "
              "checkpoint (--resume goes on from it)."),
    Flag("skip-existing", "skip_existing", kind=bool,
         help="Skip documents already encoded with this model, pruning and text."),
    Flag("allow-other-model", "allow_other_model", kind=bool,
         help="Write into an index that records another model than this one (the two known to be compatible)."),
    Flag("re-encode", "re_encode", kind=bool,
         help="Move the index to this model in place: encode again every document of another model (or of an "
              "unknown one), skip the rest; the index records the new model once every document is written."),
    Flag("max-length", "max_length", minimum=2, help="Token limit [default: the model's]."),
    Flag("passages", "passages", kind=bool, help="Split texts into token windows, one vector each (nested)."),
    Flag("passage-tokens", "passage_tokens", minimum=3, help="Tokens per passage window."),
    Flag("passage-overlap", "passage_overlap", minimum=0, help="Tokens each passage window repeats of the last."),
))
SHARED_INGEST = ("text_field", "prune", "batch_size", "bulk_concurrency", "bulk_max_bytes", "unavailable_timeout_s",
                 "allow_other_model")


def ingest_options(*fields: str, required: tuple[str, ...] = ()) -> Callable:
    """The ingest flags shared by every writing command, plus ``fields``; the command receives ``ingest``."""
    return with_group(INGEST, "ingest", fields=SHARED_INGEST + fields, required=required)


# How a MILCO query is encoded and built, shared by search and eval (each command adds its own --top-k/--depth).
SEARCH = ParameterGroup(SearchOptions, (
    Flag("echo", "echo", kind=bool, off="no-echo", help="Keep or leave out LexEcho source-language terms."),
    Flag("echo-weight", "echo_weight", kind=float, minimum=0, help="Weight of the LexEcho terms."),
    Flag("query-prune", "query_prune", kind=str, parse=lambda value: str(PruneSpec.parse(value)),
         help="Query pruning spec."),
    Flag("two-phase", "two_phase", kind=bool, off="exact",
         help="Two-phase: the heaviest terms retrieve, the rest rescore the top window; exact: every term "
              "retrieves [default: two-phase on indices of 50,000 documents or more, exact below]."),
    Flag("first-phase-terms", "first_phase_terms", minimum=1,
         help="Two-phase: how many of the heaviest query terms retrieve."),
    Flag("window", "window", minimum=1, help="Two-phase: how many of the first phase's top documents the other "
                                             "terms rescore."),
    Flag("passages", "passages", kind=bool, help="Score documents by their best passage."),
    Flag("fusion", "fusion", kind=str, choices=FUSIONS,
         help="BM25 on the text fields beside MILCO: min_max or l2 normalise each ranked list and combine them "
              "(--combination), rrf adds reciprocal ranks (--rank-constant), fused by the cluster where it can "
              "(neural-search's hybrid query and pipelines, Elasticsearch's rrf retriever), else here the same way; "
              "sum adds a boosted BM25 query to the MILCO query."),
    Flag("bm25-weight", "bm25_weight", kind=float, minimum=0,
         help="BM25's weight: its share of a fusion (0 to 1, MILCO has the rest), its boost in a sum."),
    Flag("combination", "combination", kind=str, choices=COMBINATIONS,
         help="How min_max and l2 combine the two normalised scores."),
    Flag("rank-constant", "rank_constant", minimum=1, help="rrf: the constant k of 1 / (k + rank)."),
    Flag("fusion-depth", "fusion_depth", minimum=1, help="How many of each list's best documents a fusion takes."),
    Flag("fuse-in", "fuse_in", kind=str, choices=FUSE_IN,
         help="Where to fuse: the cluster (an error where it cannot), here, or auto (the cluster where it can)."),
    Flag("query-style", "query_style", kind=str, choices=QUERY_STYLES,
         help="neural_sparse: neural-search's query (OpenSearch with neural-search)."),
    Flag("search-pipeline", "search_pipeline", kind=str,
         help="Run the search through this search pipeline (e.g. NAME-two-phase from 'opensearch-ml install')."),
    Flag("allow-other-model", "allow_other_model", kind=bool,
         help="Search an index that records another model than the query encoder's (the two known to be "
              "compatible)."),
))
CLUSTER_ENCODES = click.option(
    "--cluster-encodes", "cluster_encodes", default=None, metavar="NAME",
    help="The cluster encodes the query with the models of 'opensearch-ml install --name NAME' (implies "
         "--query-style neural_sparse; no --model needed).")


@dataclass(frozen=True)
class SearchFlags:
    """What the search flags gave: ``SearchOptions`` fields, each vector field type's parameters, and the
    installation whose models encode in the cluster."""

    options: Mapping[str, Any]
    field_parameters: Mapping[str, Mapping[str, Any]]
    cluster_encodes: str | None = None

    def build(self, client: Any, size: int, explain: bool = False, fused_parts: bool = False) -> SearchOptions:
        """SearchOptions for ``size`` hits (remote model ids looked up by installation name); usage errors for
        options that do not go together."""
        from milco_os.cluster_ml.installer import installed_model_ids

        cluster_models = installed_model_ids(client, self.cluster_encodes) if self.cluster_encodes else None
        style = {"query_style": NEURAL_SPARSE} if cluster_models else {}
        try:
            parameters = {name: VECTOR_FIELDS[name].search_parameters.build(given)
                          for name, given in self.field_parameters.items() if given}
            return SearchOptions(**{**self.options, **style}, size=size, explain=explain,
                                 fused_parts=fused_parts, cluster_models=cluster_models, field_parameters=parameters)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None


def check_query_encoder(handle: Any, encoder: Any, search_flags: SearchFlags) -> None:
    """Before a search: a ModelMismatchError where ``handle``'s index records another model than the query's
    encoder (``encoder``, or the cluster's with --cluster-encodes), unless --allow-other-model; a warning where the
    two cannot be compared."""
    from milco_os.cluster_ml.installer import installed_model
    from milco_os.index.model_record import ModelRecord, check_model

    given = ModelRecord.of(encoder) if encoder else installed_model(handle.client, search_flags.cluster_encodes)
    notice = check_model(handle.name, handle.model, given, allow_other=search_flags.options["allow_other_model"])
    if notice:
        click.echo(f"warning: {notice}", err=True)


def search_options(command: Callable) -> Callable:
    """The options that shape a MILCO query (every vector field type's own ones included); the command receives
    one ``search_flags`` (``SearchFlags``)."""
    typed = [cls for cls in VECTOR_FIELDS.values() if cls.search_parameters]

    @functools.wraps(command)
    def with_flags(*args, search, cluster_encodes, **kwargs):
        by_type = {cls.type_name: kwargs.pop(f"search_{cls.type_name}") for cls in typed}
        return command(*args, search_flags=SearchFlags(search, by_type, cluster_encodes), **kwargs)

    for cls in typed:
        with_flags = with_group(cls.search_parameters, f"search_{cls.type_name}", given_only=True)(with_flags)
    return with_group(SEARCH, "search")(CLUSTER_ENCODES(with_flags))


def vector_field_option(command: Callable) -> Callable:
    """``--vector-field`` (a new index's field type, from ``VECTOR_FIELDS``) and every type's index flags; the
    command receives ``vector_field`` and ``index_flags`` (field -> value, those given)."""
    types = "; ".join(f"{name}: {cls.summary}" for name, cls in VECTOR_FIELDS.items())
    typed = [cls for cls in VECTOR_FIELDS.values() if cls.index_parameters]

    @functools.wraps(command)
    def with_flags(*args, **kwargs):
        given = {name: value for cls in typed for name, value in kwargs.pop(f"index_{cls.type_name}").items()}
        return command(*args, index_flags=given, **kwargs)

    for cls in typed:
        with_flags = with_group(cls.index_parameters, f"index_{cls.type_name}", given_only=True)(with_flags)
    return click.option(
        "--vector-field", type=click.Choice(list(VECTOR_FIELDS)), default=None,
        help=f"Field type of new indices' vectors [default: {DEFAULT_VECTOR_FIELD}] ({types}). Recorded in the "
             "mapping's _meta, so search picks the matching query.")(with_flags)


def index_parameters(vector_field: str | None, given: Mapping[str, Any], *, creating: bool,
                     encoder_for: Callable[[], Any] = lambda: None, texts: Callable = tuple,
                     prune: Any = "none", documents: Callable[[], int | None] = lambda: None) -> Any:
    """The index parameters of an index about to get its MILCO fields (``creating``), from the index flags
    ``given``, measured with the encoder ``encoder_for`` gives where the type needs it and sized by ``documents``
    (those about to be written, where known); None otherwise. Flags that cannot apply are a usage error."""
    if given and not creating:
        raise click.UsageError(f"{given_flags(given, all_index_flags())} applies when an index gets its MILCO "
                               "fields; this one has them")
    if not creating:
        return None
    cls: type[VectorField] = VECTOR_FIELDS[vector_field or DEFAULT_VECTOR_FIELD]
    try:
        encoder = encoder_for() if cls.needs_encoder(given) else None
        return cls.prepared_parameters(given, encoder, texts, prune, documents)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


vectors_in_source_option = click.option(
    "--vectors-in-source/--vectors-out-of-source", default=None,
    help="Keep the vectors in new indices' _source [default: kept; reindex: as in SOURCE]. Out of _source the "
         "index is smaller, but search --explain cannot list term contributions, and the cluster's own _update, "
         "_update_by_query and _reindex rewrite documents from _source, without their vectors: re-encode with "
         "milco-os reindex or enrich instead.")
index_option = click.option("--index", required=True, help="Index name.")


@dataclass(frozen=True)
class EncoderChoice:
    """Where texts are encoded: an in-process checkpoint (``model``) or Triton servers (``triton_url``)."""

    model: str | None = None
    triton_url: str | None = None
    triton_model: str = "milco"
    triton_protocol: str = "grpc"

    @property
    def given(self) -> bool:
        return bool(self.model or self.triton_url)

    def check(self) -> None:
        """A usage error unless exactly one of ``--model`` and ``--triton-url`` is given (checked before anything
        is loaded or connected)."""
        if bool(self.model) == bool(self.triton_url):
            raise click.UsageError("give exactly one of --model DIR or --triton-url URL "
                                   "(or MILCO_MODEL / MILCO_TRITON_URL)")

    def load(self, unavailable_timeout_s: float | None = None):
        """The in-process encoder for ``--model``, or a TritonEncoder for ``--triton-url`` (one server or several,
        comma-separated); when every Triton server stops answering, requests wait up to ``unavailable_timeout_s``
        (None: the client's own default) for one."""
        self.check()
        if self.triton_url:
            from milco_os.encoding.triton_client import TritonEncoder

            timeout = {} if unavailable_timeout_s is None else {"unavailable_timeout_s": unavailable_timeout_s}
            return TritonEncoder(self.triton_url, self.triton_model, self.triton_protocol, **timeout)
        from milco_os.model import MilcoEncoder  # torch and transformers load only for commands that encode

        return MilcoEncoder.from_pretrained(self.model)

    def for_queries(self, search_flags: SearchFlags):
        """The encoder for queries, or None when the cluster encodes them (then no encoder may be named)."""
        self.check_for_queries(search_flags)
        return None if search_flags.cluster_encodes else self.load()

    def check_for_queries(self, search_flags: SearchFlags) -> None:
        """A usage error unless the query encoder is named once: the cluster's, or --model or --triton-url."""
        if not search_flags.cluster_encodes:
            self.check()
        elif self.given:
            raise click.UsageError("--cluster-encodes: the cluster encodes the query; leave out --model/--triton-url")


def encoder_options(command: Callable) -> Callable:
    """--model, --triton-url, --triton-model, --triton-protocol; the command receives one ``encoder_choice``."""
    @functools.wraps(command)
    def with_choice(*args, model, triton_url, triton_model, triton_protocol, **kwargs):
        return command(*args, encoder_choice=EncoderChoice(model, triton_url, triton_model, triton_protocol), **kwargs)

    options = (
        click.option("--model", envvar="MILCO_MODEL", default=None,
                     help="MILCO checkpoint directory (or Hugging Face id when the hub is reachable)."),
        click.option("--triton-url", envvar="MILCO_TRITON_URL", default=None,
                     help="Encode on these Triton servers instead of in process: host:port, several "
                          "comma-separated (each request to the least-loaded; one that stops answering is set "
                          "aside and tried again later)."),
        click.option("--triton-model", default=EncoderChoice.triton_model, show_default=True,
                     help="Model name on the Triton server."),
        click.option("--triton-protocol", type=click.Choice(["grpc", "http"]), default=EncoderChoice.triton_protocol,
                     show_default=True),
    )
    for option in reversed(options):
        with_choice = option(with_choice)
    return with_choice


prune_option = click.option("--prune", default="none", show_default=True, callback=parsed(PRUNE), help=PRUNE_HELP)
