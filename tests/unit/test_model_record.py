"""The model an index records, checked against an encoder; which stored documents count as unchanged."""

from __future__ import annotations

import pytest

from milco_os.encoding.contract import SparseEncoder
from milco_os.index.inventory import IndexInventory
from milco_os.index.model_record import ModelMismatchError, ModelRecord, check_model
from milco_os.pipeline.encode_stage import unchanged

OURS, THEIRS = "a" * 64, "b" * 64


class Named(SparseEncoder):
    """An encoder that only has a name and a fingerprint (nothing here encodes)."""

    def __init__(self, name: str, fingerprint: str | None) -> None:
        self.name, self.fingerprint = name, fingerprint

    def encode(self, texts, **options):
        raise AssertionError("not encoded here")


def test_a_matching_fingerprint_passes_silently_whatever_the_names() -> None:
    assert check_model("docs", ModelRecord("milco-v1", OURS), ModelRecord("renamed", OURS)) is None


def test_another_fingerprint_is_refused_naming_both_models() -> None:
    with pytest.raises(ModelMismatchError) as refused:
        check_model("docs", ModelRecord("milco", OURS), ModelRecord("milco", THEIRS))
    message = str(refused.value)
    assert f"milco ({OURS[:12]})" in message and f"milco ({THEIRS[:12]})" in message
    assert "--allow-other-model" in message and refused.value.exit_code == 12


def test_allowing_the_other_model_says_so() -> None:
    notice = check_model("docs", ModelRecord("milco", OURS), ModelRecord("milco", THEIRS), allow_other=True)
    assert notice and "--allow-other-model" in notice


@pytest.mark.parametrize("recorded, given, says", [
    (None, ModelRecord("milco", OURS), "records no model yet"),
    (ModelRecord("milco", OURS), ModelRecord("triton:milco", None), "the encoder's fingerprint is unknown"),
    (ModelRecord("milco", None), ModelRecord("milco", OURS), "the index's fingerprint is unknown"),
])
def test_what_cannot_be_checked_is_a_notice_not_an_error(recorded, given, says) -> None:
    assert says in check_model("docs", recorded, given)


def test_a_mapping_records_its_model_and_a_new_index_only_a_known_one() -> None:
    meta = {"_meta": {"milco_os": {"format": 1, "model": ModelRecord("milco", OURS).as_meta()}}}
    assert ModelRecord.from_mapping(meta) == ModelRecord("milco", OURS)
    assert ModelRecord.from_mapping({"_meta": {"milco_os": {"format": 1}}}) is None
    assert ModelRecord.recordable(Named("triton:milco", None)) is None
    assert ModelRecord.recordable(Named("milco", OURS)) == ModelRecord("milco", OURS)


def meta(revision: str) -> dict:
    return {"model": "milco", "model_revision": revision, "prune": "none", "text_hash": "h"}


@pytest.mark.parametrize("stored, wanted, strict, same", [
    (meta(OURS), meta(OURS), False, True),
    (meta(THEIRS), meta(OURS), False, False),
    (meta(""), meta(OURS), False, True),   # written before documents carried a fingerprint
    (meta(OURS), meta(""), False, True),   # an encoder that does not know its own
    (meta(""), meta(OURS), True, False),   # --re-encode: unknown is another model
    (meta(OURS), meta(OURS), True, True),
    ({**meta(OURS), "prune": "topk:8"}, meta(OURS), False, False),
])
def test_skip_existing_compares_fingerprints_where_both_are_known(stored, wanted, strict, same) -> None:
    assert unchanged(stored, wanted, strict=strict) is same


def test_the_inventory_tells_a_consistent_index_from_a_mixed_one() -> None:
    recorded = ModelRecord("milco", OURS)
    consistent = IndexInventory("docs", 5, "rank_features", recorded, {("milco", OURS): 4, ("", ""): 1})
    mixed = IndexInventory("docs", 5, "rank_features", recorded, {("milco", OURS): 2, ("milco", THEIRS): 3})
    old = IndexInventory("docs", 5, "rank_features", recorded, {("milco", OURS): 3, ("milco", ""): 2})
    assert consistent.verdict() == "consistent" and consistent.not_encoded == 1
    assert mixed.others == 3 and mixed.verdict().startswith("mixed: 3 documents of another model")
    assert "--re-encode" in mixed.verdict()
    assert old.others == 0 and old.unknown == 2
    assert IndexInventory("docs", 0, "rank_features", None, {}).verdict().startswith("records no model")
