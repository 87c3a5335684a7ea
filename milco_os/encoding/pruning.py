"""Pruning specs: one string grammar used everywhere (CLI, config, Triton); applied on the device by
``milco_os.model.device_pruning``.

Grammar::

    spec  := "none" | rules | view "=" (rules | "none") ("," view "=" (rules | "none"))*
    rules := rule ("+" rule)*
    rule  := "topk:" K | "mass:" ALPHA | "percentile:" P | "ratio:" R | "abs:" T
    view  := "e" (English wordpieces) | "m" (LexEcho source pieces)

Without a view prefix the rules apply to the document's terms of both views together,
as the paper prunes the concatenated vector; with prefixes each view is pruned on its
own (a view left out is not pruned). Combined rules keep the terms every rule keeps.
Terms are ranked by weight, ties broken by lower id (English view first), so pruning
is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

RULE_KINDS = ("topk", "mass", "percentile", "ratio", "abs")
VIEWS = ("e", "m")


@dataclass(frozen=True)
class Rule:
    """One pruning criterion; each keeps a prefix of the terms sorted by weight."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        valid = {
            "topk": self.value >= 1 and float(self.value).is_integer(),
            "mass": 0 < self.value <= 1,
            "percentile": 0 <= self.value < 100,
            "ratio": 0 <= self.value <= 1,
            "abs": self.value >= 0,
        }
        if self.kind not in valid:
            raise ValueError(f"unknown pruning rule '{self.kind}' (expected one of {', '.join(RULE_KINDS)})")
        if not valid[self.kind]:
            ranges = {"topk": "an integer >= 1", "mass": "in (0, 1]", "percentile": "in [0, 100)",
                      "ratio": "in [0, 1]", "abs": ">= 0"}
            raise ValueError(f"pruning rule {self.kind}:{self.value:g} out of range: must be {ranges[self.kind]}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


@dataclass(frozen=True)
class PruneSpec:
    """Rules for both views together (``joint``) or per view (``per_view``); empty means no pruning."""

    joint: tuple[Rule, ...] = ()
    per_view: tuple[tuple[str, tuple[Rule, ...]], ...] = ()

    @classmethod
    def parse(cls, spec: str | PruneSpec | None) -> PruneSpec:
        if isinstance(spec, PruneSpec):
            return spec
        text = (spec or "none").strip()
        if "=" not in text:
            return cls(joint=parse_rules(text))
        per_view: dict[str, tuple[Rule, ...]] = {}
        for part in text.split(","):
            view, sep, rules = part.partition("=")
            view = view.strip()
            if view not in VIEWS or view in per_view:
                raise ValueError(f"pruning spec '{text}': expected views 'e' and/or 'm' once each, got '{view}'")
            per_view[view] = parse_rules(rules)
        return cls(per_view=tuple(sorted(per_view.items())))

    @property
    def is_none(self) -> bool:
        return not self.joint and not any(rules for _, rules in self.per_view)

    def rules_for(self, view: str) -> tuple[Rule, ...]:
        return dict(self.per_view).get(view, ())

    def __str__(self) -> str:
        if self.is_none:
            return "none"
        if self.joint:
            return "+".join(map(str, self.joint))
        return ",".join(f"{view}={'+'.join(map(str, rules)) or 'none'}" for view, rules in self.per_view)


def parse_rules(text: str) -> tuple[Rule, ...]:
    text = text.strip()
    if text in ("", "none"):
        return ()
    rules = []
    for part in text.split("+"):
        kind, sep, value = part.strip().partition(":")
        if not sep:
            raise ValueError(f"pruning rule '{part}' must look like kind:value, e.g. topk:128 or mass:0.9")
        try:
            number = float(value)
        except ValueError as exc:
            raise ValueError(f"pruning rule '{part}': '{value}' is not a number") from exc
        rules.append(Rule(kind.strip(), number))
    return tuple(rules)
