"""Pruning spec parsing and the properties each rule promises."""

from __future__ import annotations

import math
import random

import pytest
import torch

from milco_os.encoding.pruning import PruneSpec, Rule
from milco_os.model.device_pruning import keep_count, prune_row, rule_keep_count, sort_terms


def random_weights(seed: int, n: int) -> torch.Tensor:
    rng = random.Random(seed)
    return torch.tensor(sorted((rng.choice([0.5, 1.0, rng.random() * 3]) for _ in range(n)), reverse=True))


@pytest.mark.parametrize("spec", ["none", "topk:128", "mass:0.9", "percentile:95", "ratio:0.1", "abs:0.05",
                                  "mass:0.9+topk:256", "e=topk:100,m=abs:0.2", "e=none,m=topk:3"])
def test_spec_round_trips(spec: str) -> None:
    assert str(PruneSpec.parse(spec)) == spec
    assert PruneSpec.parse(str(PruneSpec.parse(spec))) == PruneSpec.parse(spec)


@pytest.mark.parametrize("bad", ["topk", "topk:0", "topk:1.5", "mass:0", "mass:1.5", "percentile:100", "ratio:2",
                                 "abs:-1", "median:3", "x=topk:3", "e=topk:3,e=topk:4", "topk:abc"])
def test_bad_specs_are_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ValueError):
        PruneSpec.parse(bad)


@pytest.mark.parametrize("seed", range(20))
def test_mass_keeps_the_smallest_prefix_reaching_alpha(seed: int) -> None:
    weights = random_weights(seed, random.Random(seed).randint(1, 60))
    alpha = random.Random(seed + 100).uniform(0.05, 1.0)
    kept = rule_keep_count(Rule("mass", alpha), weights)
    total = float(weights.double().sum())
    assert float(weights[:kept].double().sum()) >= alpha * total - 1e-9
    assert kept == 1 or float(weights[: kept - 1].double().sum()) < alpha * total


@pytest.mark.parametrize(("n", "percentile"), [(1, 0), (1, 99), (10, 95), (7, 50), (58, 90), (570, 80), (3, 33.3)])
def test_percentile_keeps_ceil_of_the_remaining_share(n: int, percentile: float) -> None:
    assert rule_keep_count(Rule("percentile", percentile), random_weights(n, n)) == math.ceil(n * (100 - percentile) / 100)


def test_ratio_abs_and_topk() -> None:
    weights = torch.tensor([4.0, 2.0, 0.4, 0.39, 0.1])
    assert rule_keep_count(Rule("ratio", 0.1), weights) == 3
    assert rule_keep_count(Rule("abs", 0.39), weights) == 4
    assert rule_keep_count(Rule("topk", 2), weights) == 2
    assert rule_keep_count(Rule("topk", 50), weights) == 5
    assert keep_count((Rule("abs", 0.1), Rule("topk", 3)), weights) == 3
    assert keep_count((), weights) == 5


def test_ties_are_broken_by_lower_id() -> None:
    ids, weights = sort_terms(torch.tensor([3, 5, 9, 11]), torch.tensor([1.0, 2.0, 1.0, 2.0]))
    assert ids.tolist() == [5, 11, 3, 9]


def test_joint_pruning_ranks_both_views_together() -> None:
    en_ids, en_w = torch.tensor([1, 4, 7]), torch.tensor([0.5, 3.0, 1.0])
    m_ids, m_w = torch.tensor([2, 8]), torch.tensor([2.0, 0.1])
    e, ew, m, mw = prune_row(en_ids, en_w, m_ids, m_w, PruneSpec.parse("topk:3"), en_vocab_size=10)
    assert (e.tolist(), m.tolist()) == ([4, 7], [2])
    assert ew.tolist() == [3.0, 1.0] and mw.tolist() == [2.0]
    e, _, m, _ = prune_row(en_ids, en_w, m_ids, m_w, PruneSpec.parse("e=topk:1"), en_vocab_size=10)
    assert (e.tolist(), m.tolist()) == ([4], [2, 8])
