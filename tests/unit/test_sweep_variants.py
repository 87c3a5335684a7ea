"""``bench/seismic_sweep.py``'s index variants: what each sets, its index's name, and the refusals."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from milco_os.index.seismic_parameters import SeismicIndex

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from seismic_sweep import Variant, variants_of_counts  # noqa: E402


PRODUCT_RATIO = SeismicIndex.cluster_ratio  # the product's default, which a variant keeps unless it sets its own


def test_a_count_and_its_key_value_form_are_the_same_variant() -> None:
    assert Variant.parse("2000") == Variant.parse("n_postings=2000") == Variant((("n_postings", 2000),))
    assert Variant.parse("2000").index == f"sweep-seismic-np2000-cr{PRODUCT_RATIO:g}"
    assert Variant.parse("default") == Variant() and Variant().index == f"sweep-seismic-cr{PRODUCT_RATIO:g}"


def test_a_variant_names_every_parameter_its_index_is_made_with() -> None:
    variant = Variant.parse("n_postings=2000,cluster_ratio=0.2,summary_prune_ratio=0.6")
    assert variant.index == "sweep-seismic-np2000-cr0.2-spr0.6"
    assert variant.label == "n_postings 2000, cluster_ratio 0.2, summary_prune_ratio 0.6"
    assert variant.n_postings == "2000"
    assert Variant.parse("cluster_ratio=0.2").label == "n_postings default, cluster_ratio 0.2"
    assert Variant.parse("summary_prune_ratio=0.6").label == \
        f"n_postings default, cluster_ratio {PRODUCT_RATIO:g}, summary_prune_ratio 0.6"


def test_counts_give_one_variant_each() -> None:
    assert variants_of_counts("default,1000,") == (Variant(), Variant((("n_postings", 1000),)))


@pytest.mark.parametrize("text, named", [("k=200", "'k'"), ("n_postings=many", "'many'"),
                                         ("cluster_ratio=", "cluster_ratio")])
def test_a_wrong_variant_is_refused_naming_the_part(text: str, named: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=named):
        Variant.parse(text)
