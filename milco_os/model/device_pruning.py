"""Applying a ``PruneSpec`` to encoded terms on their device (torch)."""

from __future__ import annotations

import math

import torch

from milco_os.encoding.pruning import PruneSpec, Rule


def rule_keep_count(rule: Rule, sorted_weights: torch.Tensor) -> int:
    """How many of the descending ``sorted_weights`` ``rule`` keeps (always a prefix)."""
    n = sorted_weights.numel()
    if n == 0:
        return 0
    if rule.kind == "topk":
        return min(n, int(rule.value))
    if rule.kind == "percentile":
        return math.ceil(n * (100 - rule.value) / 100)
    if rule.kind == "mass":
        cumulative = torch.cumsum(sorted_weights.double(), 0)
        target = cumulative[-1] * rule.value
        return min(n, int(torch.searchsorted(cumulative, target).item()) + 1)
    threshold = sorted_weights[0] * rule.value if rule.kind == "ratio" else rule.value
    return int((sorted_weights >= threshold).sum().item())


def sort_terms(ids: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Terms by descending weight; ties keep the ascending-id order of ``ids``."""
    order = torch.sort(weights, descending=True, stable=True).indices
    return ids[order], weights[order]


def keep_count(rules: tuple[Rule, ...], sorted_weights: torch.Tensor) -> int:
    return min((rule_keep_count(rule, sorted_weights) for rule in rules), default=sorted_weights.numel())


def prune_row(
    en_ids: torch.Tensor, en_weights: torch.Tensor, m_ids: torch.Tensor, m_weights: torch.Tensor,
    spec: PruneSpec, en_vocab_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort one text's terms (ids ascending on input) by weight and apply ``spec``, on their device."""
    if spec.joint:
        ids, weights = sort_terms(torch.cat([en_ids, m_ids + en_vocab_size]), torch.cat([en_weights, m_weights]))
        kept = keep_count(spec.joint, weights)
        ids, weights = ids[:kept], weights[:kept]
        is_en = ids < en_vocab_size
        return ids[is_en], weights[is_en], ids[~is_en] - en_vocab_size, weights[~is_en]
    en_ids, en_weights = sort_terms(en_ids, en_weights)
    m_ids, m_weights = sort_terms(m_ids, m_weights)
    en_kept = keep_count(spec.rules_for("e"), en_weights)
    m_kept = keep_count(spec.rules_for("m"), m_weights)
    return en_ids[:en_kept], en_weights[:en_kept], m_ids[:m_kept], m_weights[:m_kept]
