"""``--config FILE``: option defaults from a YAML file (command-line flags and environment still win)."""

from __future__ import annotations

from pathlib import Path

import click


def load_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """Make the YAML mapping's keys (option names, dashes or underscores) the command's defaults."""
    if value is None:
        return
    import yaml

    try:
        data = yaml.safe_load(value.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise click.BadParameter(f"{value} is not valid YAML: {exc}", param_hint="--config") from exc
    if not isinstance(data, dict):
        raise click.BadParameter(f"{value} must hold a mapping of option names to values", param_hint="--config")
    known = {p.name for p in ctx.command.params}
    defaults = {str(key).replace("-", "_"): item for key, item in data.items()}
    unknown = sorted(set(defaults) - known)
    if unknown:
        raise click.BadParameter(f"{value}: unknown option(s) {', '.join(unknown)}", param_hint="--config")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


config_option = click.option(
    "--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), is_eager=True, expose_value=False,
    callback=load_config, help="YAML file of option defaults (flags and environment variables win).")
