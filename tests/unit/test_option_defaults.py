"""Every command-line default is the dataclass's: a default is written once, where the option's value lands."""

from __future__ import annotations

import dataclasses

import click

from milco_os.cli import main
from milco_os.commands.options import TableOption
from milco_os.pipeline.encode_stage import IngestOptions
from milco_os.search.searcher import SearchOptions


def commands(group: click.Group = main, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix}{name} ")
        else:
            found.append((prefix + name, command))
    return found


def table_options() -> list[tuple[str, TableOption]]:
    return [(f"{name} {option.opts[0]}", option) for name, command in commands()
            for option in command.params if isinstance(option, TableOption)]


def field_default(cls: type, name: str) -> object:
    field = {f.name: f for f in dataclasses.fields(cls)}.get(name)
    return None if field is None or field.default is dataclasses.MISSING else field.default


def test_each_flag_defaults_to_the_dataclass_field_it_fills() -> None:
    made = table_options()
    filled = {option.group.parameters for _, option in made}
    assert {IngestOptions, SearchOptions} <= filled and len(filled) >= 4, filled
    for where, option in made:
        if option.required:
            continue
        wanted = None if option.given_only else field_default(option.group.parameters, option.flag.field)
        assert option.default == wanted, f"{where}: click default {option.default!r}, dataclass {wanted!r}"
        shown = field_default(option.group.parameters, option.flag.field)
        if option.given_only and shown is not None:
            assert f"[default: {shown}]" in option.help, where


def test_the_shared_flags_are_on_every_command_that_writes() -> None:
    by_command = {}
    for where, option in table_options():
        by_command.setdefault(where.rsplit(" ", 1)[0], set()).add(option.flag.field)
    for command in ("ingest", "reindex", "enrich"):
        assert {"batch_size", "bulk_concurrency", "bulk_max_bytes", "unavailable_timeout_s", "prune"} <= \
            by_command[command], command
    assert {"echo", "two_phase", "window", "k", "pruning"} <= by_command["search"] == by_command["eval"]


def test_no_command_declares_a_parameter_twice() -> None:
    for name, command in commands():
        names = [param.name for param in command.params]
        assert len(names) == len(set(names)), f"{name}: {sorted(n for n in names if names.count(n) > 1)}"
