"""Every text of a batch pruned at once, on its device: terms in canonical order, then keep counts per rule.

A view's terms for a batch are one padded ``[batch, width]`` pair of ids and weights.
Each row holds that text's terms by weight descending, ties broken by lower id, and
then padding slots that weigh 0. Every ``PruneSpec`` rule keeps a prefix of a row, so
pruning a batch is computing one keep count per row; no row is visited in Python and
nothing is read back to the host but the widest row's term count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from milco_os.encoding.pruning import PruneSpec, Rule


@dataclass(frozen=True)
class BatchTerms:
    """One view's terms of every text in a batch: row ``r`` holds ``counts[r]`` terms, heaviest first."""

    ids: torch.Tensor
    weights: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def empty(cls, rows: int, device: torch.device) -> BatchTerms:
        return cls(torch.zeros((rows, 0), dtype=torch.long, device=device),
                   torch.zeros((rows, 0), device=device), torch.zeros(rows, dtype=torch.long, device=device))

    @property
    def valid(self) -> torch.Tensor:
        """``[batch, width]``: which slots hold a term."""
        return torch.arange(self.ids.shape[1], device=self.ids.device) < self.counts.unsqueeze(1)


def by_weight(ids: torch.Tensor, weights: torch.Tensor) -> BatchTerms:
    """Rows whose terms are in ascending id order (padding anywhere), re-sorted by weight, ties keeping id order."""
    weights, order = weights.sort(dim=1, descending=True, stable=True)
    return BatchTerms(ids.gather(1, order), weights, (weights > 0).sum(dim=1))


def positive_terms(dense: torch.Tensor) -> BatchTerms:
    """The positive entries of each row of ``[batch, vocab]`` weights (one host read: the widest row's count).

    A stable sort of the dense rows is already the canonical order: column order is id order.
    """
    weights, ids = dense.sort(dim=1, descending=True, stable=True)
    counts = (weights > 0).sum(dim=1)
    width = int(counts.max().item()) if dense.shape[0] else 0
    return BatchTerms(ids[:, :width], weights[:, :width], counts)


def summed_terms(ids: torch.Tensor, weights: torch.Tensor) -> BatchTerms:
    """Per row, one term per distinct id of ``ids`` carrying the sum of its ``weights``: ``[batch, positions]``."""
    ids, order = ids.sort(dim=1, stable=True)
    weights = weights.gather(1, order)
    starts = torch.ones_like(ids, dtype=torch.bool)
    starts[:, 1:] = ids[:, 1:] != ids[:, :-1]
    slots = starts.cumsum(dim=1) - 1
    summed = torch.zeros_like(weights).scatter_add_(1, slots, weights)
    distinct = torch.zeros_like(ids).scatter_(1, slots, ids)
    return by_weight(distinct, summed)


def rule_keep_counts(rule: Rule, terms: BatchTerms) -> torch.Tensor:
    """How many terms of each row ``rule`` keeps (always a prefix of the row)."""
    counts, weights = terms.counts, terms.weights
    if rule.kind == "topk":
        return counts.clamp(max=int(rule.value))
    if rule.kind == "percentile":
        return torch.ceil(counts.double() * (100 - rule.value) / 100).long()
    if weights.shape[1] == 0:
        return counts
    valid = terms.valid
    if rule.kind == "mass":
        cumulative = torch.where(valid, weights, 0).double().cumsum(dim=1)
        reached = torch.searchsorted(cumulative, cumulative[:, -1:] * rule.value).squeeze(1)
        return torch.minimum(reached + 1, counts)
    threshold = weights[:, :1] * rule.value if rule.kind == "ratio" else rule.value
    return ((weights >= threshold) & valid).sum(dim=1)


def keep_counts(rules: tuple[Rule, ...], terms: BatchTerms) -> torch.Tensor:
    """Terms kept per row by all ``rules`` together (the smallest of their prefixes)."""
    kept = terms.counts
    for rule in rules:
        kept = torch.minimum(kept, rule_keep_counts(rule, terms))
    return kept


def pruned_counts(en: BatchTerms, m: BatchTerms, spec: PruneSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Terms kept per row of each view; joint rules rank both views together (ties: English view first)."""
    if not spec.joint:
        return keep_counts(spec.rules_for("e"), en), keep_counts(spec.rules_for("m"), m)
    # Stable: equal weights keep the English slots first, each view already in id order.
    weights, order = torch.cat([en.weights, m.weights], dim=1).sort(dim=1, descending=True, stable=True)
    joint = BatchTerms(order, weights, en.counts + m.counts)  # ids: slots of the concatenation
    kept = keep_counts(spec.joint, joint)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    is_kept = rank < kept.unsqueeze(1)
    width = en.ids.shape[1]
    return is_kept[:, :width].sum(dim=1), is_kept[:, width:].sum(dim=1)
