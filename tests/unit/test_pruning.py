"""Pruning spec parsing and the properties each rule promises."""

from __future__ import annotations

import math
import random

import pytest
import torch

from hypothesis import given, settings, strategies as st

from milco_os.encoding.pruning import PruneSpec, Rule
from milco_os.model.device_pruning import (
    BatchTerms,
    by_weight,
    keep_counts,
    positive_terms,
    pruned_counts,
    rule_keep_counts,
    summed_terms,
)


def canonical_terms(ids: torch.Tensor, weights: torch.Tensor) -> BatchTerms:
    """Any terms in canonical order: sorted by id, then by weight (stable)."""
    ids, order = ids.sort(dim=1, stable=True)
    return by_weight(ids, weights.gather(1, order))


def random_weights(seed: int, n: int) -> torch.Tensor:
    rng = random.Random(seed)
    return torch.tensor(sorted((rng.choice([0.5, 1.0, rng.random() * 3]) for _ in range(n)), reverse=True))


def one_row(weights: torch.Tensor) -> BatchTerms:
    """A batch of one text whose terms (ids 0..n-1) weigh ``weights``."""
    return canonical_terms(torch.arange(len(weights)).unsqueeze(0), weights.unsqueeze(0))


def rule_keep_count(rule: Rule, weights: torch.Tensor) -> int:
    return int(rule_keep_counts(rule, one_row(weights)).item())


def keep_count(rules: tuple[Rule, ...], weights: torch.Tensor) -> int:
    return int(keep_counts(rules, one_row(weights)).item())


def pruned_row(en_ids: list[int], en_weights: list[float], m_ids: list[int], m_weights: list[float],
               spec: str) -> tuple[list[int], list[float], list[int], list[float]]:
    """One text pruned by the batch code: the kept ids and weights of each view, heaviest first."""
    en = canonical_terms(torch.tensor([en_ids]), torch.tensor([en_weights]))
    m = canonical_terms(torch.tensor([m_ids]), torch.tensor([m_weights]))
    en_kept, m_kept = (int(k) for k in pruned_counts(en, m, PruneSpec.parse(spec)))
    return (en.ids[0, :en_kept].tolist(), en.weights[0, :en_kept].tolist(),
            m.ids[0, :m_kept].tolist(), m.weights[0, :m_kept].tolist())


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
    terms = canonical_terms(torch.tensor([[9, 5, 3, 11]]), torch.tensor([[1.0, 2.0, 1.0, 2.0]]))
    assert terms.ids.tolist() == [[5, 11, 3, 9]]


def test_joint_pruning_ranks_both_views_together() -> None:
    e, ew, m, mw = pruned_row([1, 4, 7], [0.5, 3.0, 1.0], [2, 8], [2.0, 0.1], "topk:3")
    assert (e, m) == ([4, 7], [2])
    assert ew == [3.0, 1.0] and mw == [2.0]
    e, _, m, _ = pruned_row([1, 4, 7], [0.5, 3.0, 1.0], [2, 8], [2.0, 0.1], "e=topk:1")
    assert (e, m) == ([4], [2, 8])


def test_joint_ties_keep_the_english_view_first() -> None:
    e, _, m, _ = pruned_row([6, 2], [1.0, 1.0], [0, 1], [1.0, 2.0], "topk:2")
    assert (e, m) == ([2], [1])


def test_positive_terms_keep_every_positive_entry_of_each_row() -> None:
    dense = torch.tensor([[0.0, 3.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0], [2.0, 0.5, 0.25, 0.0, 4.0]])
    terms = positive_terms(dense)
    assert terms.counts.tolist() == [3, 0, 4]
    assert terms.ids[0, :3].tolist() == [1, 3, 4] and terms.ids[2].tolist() == [4, 0, 1, 2]
    assert terms.weights[1].tolist() == [0.0] * terms.weights.shape[1]


def test_summed_terms_add_up_repeated_ids_per_row() -> None:
    ids = torch.tensor([[5, 7, 5, 1, 1], [3, 3, 3, 9, 1]])
    weights = torch.tensor([[0.5, 1.0, 0.25, 0.0, 0.0], [0.5, 0.5, 0.5, 2.0, 0.0]])
    terms = summed_terms(ids, weights)
    assert terms.counts.tolist() == [2, 2]
    assert terms.ids[0, :2].tolist() == [7, 5] and terms.weights[0, :2].tolist() == [1.0, 0.75]
    assert terms.ids[1, :2].tolist() == [9, 3] and terms.weights[1, :2].tolist() == [2.0, 1.5]


def reference_keep(rules: tuple[Rule, ...], weights: list[float]) -> int:
    """The rules' meaning on one text's weights sorted heaviest first, in plain Python."""
    kept = len(weights)
    for rule in rules:
        n = len(weights)
        if rule.kind == "topk":
            count = min(n, int(rule.value))
        elif rule.kind == "percentile":
            count = math.ceil(n * (100 - rule.value) / 100)
        elif rule.kind == "mass":
            total, running, count = sum(weights), 0.0, 0
            while count < n and running < total * rule.value:
                running += weights[count]
                count += 1
        else:
            threshold = weights[0] * rule.value if rule.kind == "ratio" and weights else rule.value
            count = sum(w >= threshold for w in weights)
        kept = min(kept, count)
    return kept


def reference_prune(rows: list[tuple[dict[int, float], dict[int, float]]], spec: PruneSpec,
                    en_vocab_size: int) -> list[tuple[list[int], list[int]]]:
    """Each text's kept ids per view, pruned one at a time."""
    pruned = []
    for en, m in rows:
        if spec.joint:
            terms = sorted([(-w, i) for i, w in en.items()] + [(-w, en_vocab_size + i) for i, w in m.items()])
            kept = [i for _, i in terms[:reference_keep(spec.joint, [-w for w, _ in terms])]]
            pruned.append(([i for i in kept if i < en_vocab_size], [i - en_vocab_size for i in kept
                                                                     if i >= en_vocab_size]))
            continue
        views = []
        for view, terms in (("e", en), ("m", m)):
            ranked = sorted((-w, i) for i, w in terms.items())
            views.append([i for _, i in ranked[:reference_keep(spec.rules_for(view), [-w for w, _ in ranked])]])
        pruned.append((views[0], views[1]))
    return pruned


EIGHTHS = st.integers(min_value=1, max_value=40).map(lambda n: n / 8)
ROW = st.tuples(st.dictionaries(st.integers(0, 30), EIGHTHS, max_size=25),
                st.dictionaries(st.integers(0, 50), EIGHTHS, max_size=12))
SPECS = ["none", "topk:5", "mass:0.5", "mass:1", "percentile:60", "ratio:0.5", "abs:2", "mass:0.8+topk:6",
         "e=topk:3,m=mass:0.7", "e=percentile:50+abs:1", "m=ratio:0.3", "ratio:0+topk:1"]


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(ROW, min_size=1, max_size=6), spec=st.sampled_from(SPECS))
def test_the_batch_prunes_each_text_as_if_it_were_alone(rows, spec: str) -> None:
    parsed = PruneSpec.parse(spec)
    width = max(len(en) for en, _ in rows) + 2
    m_width = max(len(m) for _, m in rows) + 1

    def padded(view: dict[int, float], size: int) -> tuple[list[int], list[float]]:
        return list(view) + [0] * (size - len(view)), list(view.values()) + [0.0] * (size - len(view))

    en_rows = [padded(en, width) for en, _ in rows]
    m_rows = [padded(m, m_width) for _, m in rows]
    en = canonical_terms(torch.tensor([r[0] for r in en_rows]), torch.tensor([r[1] for r in en_rows]))
    m = canonical_terms(torch.tensor([r[0] for r in m_rows]), torch.tensor([r[1] for r in m_rows]))
    en_kept, m_kept = pruned_counts(en, m, parsed)
    batch = [(en.ids[r, :int(en_kept[r])].tolist(), m.ids[r, :int(m_kept[r])].tolist()) for r in range(len(rows))]
    assert batch == reference_prune(rows, parsed, en_vocab_size=31)
