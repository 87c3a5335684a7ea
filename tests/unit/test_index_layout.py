"""Index bodies: the vector field type is applied to every vector field and recorded in ``_meta``."""

from __future__ import annotations

import pytest

from milco_os.errors import MilcoOsError
from milco_os.index.setup import incompatibilities, index_body


@pytest.mark.parametrize("passages", [False, True])
def test_vector_type_reaches_every_vector_field_and_the_meta(passages: bool) -> None:
    body = index_body(passages=passages, shards=2, replicas=0, vector_type="sparse_vector",
                      sparse_vector_options={"index_options": {"prune": False}})
    properties = body["mappings"]["properties"]
    fields = [properties.get("milco_en"), properties.get("milco_m")]
    if passages:
        fields += [properties["milco_passages"]["properties"][name] for name in ("milco_en", "milco_m")]
    present = [field for field in fields if field]
    assert present and all(field == {"type": "sparse_vector", "index_options": {"prune": False}} for field in present)
    assert body["mappings"]["_meta"]["milco_os"]["vector_field_type"] == "sparse_vector"
    assert body["settings"]["index"]["number_of_shards"] == 2


def test_rank_features_stays_the_default_and_pipelines_can_be_left_out() -> None:
    body = index_body(passages=False, shards=1, replicas=1, default_pipeline=False,
                      sparse_vector_options={"index_options": {"prune": False}})
    assert body["mappings"]["properties"]["milco_en"] == {"type": "rank_features"}
    assert "default_pipeline" not in body["settings"]["index"]
    assert index_body(passages=False, shards=1, replicas=1)["settings"]["index"]["default_pipeline"] == "milco-stamp"


def test_an_index_of_the_other_vector_type_is_incompatible() -> None:
    existing = index_body(passages=False, shards=1, replicas=1)["mappings"]
    wanted = index_body(passages=False, shards=1, replicas=1, vector_type="sparse_vector")
    assert any("milco_en" in problem for problem in incompatibilities(existing, wanted))
    with pytest.raises(MilcoOsError, match="unknown vector field type"):
        index_body(passages=False, shards=1, replicas=1, vector_type="dense_vector")
