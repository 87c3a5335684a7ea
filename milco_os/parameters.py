"""Command-line flags described as data, beside the dataclass they fill.

A ``ParameterGroup`` pairs a frozen dataclass (its defaults are the only defaults) with
the flags that fill its fields; ``commands/options.py`` turns each ``Flag`` into a click
option, so code below the command line declares its flags without importing click.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Flag:
    """One flag (``name`` without dashes) filling the dataclass field ``field``.

    ``kind`` is int, float, str or bool (a switch; with ``off``, the flag that turns it
    off); ``minimum``/``maximum`` bound numbers (``*_open``: the bound itself is refused);
    ``choices`` lists a str flag's values; ``parse`` turns a str flag's text into the
    field's value, raising ValueError with the message to show.
    """

    name: str
    field: str
    help: str
    kind: type = int
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple[str, ...] = ()
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    off: str | None = None

    @property
    def option(self) -> str:
        return f"--{self.name}"


@dataclass(frozen=True)
class ParameterGroup:
    """A dataclass and the flags that fill it; a flag left out keeps the dataclass's default."""

    parameters: type
    flags: tuple[Flag, ...]
    builder: Callable[[Mapping[str, Any]], Any] | None = None  # where flags do not map one to one onto fields

    def default(self, flag: Flag) -> Any:
        """The dataclass's default for ``flag``'s field (None when it has none)."""
        return dataclass_default(self.parameters, flag.field)

    def build(self, given: Mapping[str, Any]) -> Any:
        """The dataclass from the values of the flags given (field name -> value)."""
        return self.builder(given) if self.builder else self.parameters(**given)


def dataclass_default(cls: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``cls`` (from its factory where it has one); None without one."""
    field = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    if field is None:
        return None
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None
