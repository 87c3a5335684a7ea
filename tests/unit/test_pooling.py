"""Both ways of pooling the English view give the same weights; the tiles cover every real position once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from milco_os.model import MilcoEncoder
from milco_os.model.pooling import english_weights_by_rows, english_weights_by_tiles, position_tiles

TEXTS = ["Berlin ist die Hauptstadt von Deutschland und eine große Stadt.", "東京は日本の首都", "a",
         "Search engines rank documents by how well they match a query, and so do we.", "Быстрая лиса"]


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=12), rows_per_tile=st.integers(1, 200))
def test_tiles_cover_each_real_position_once(lengths: list[int], rows_per_tile: int) -> None:
    lengths = sorted(lengths, reverse=True)
    covered = [[0] * length for length in lengths]
    for start, end, active in position_tiles(lengths, rows_per_tile):
        assert end > start and active * (end - start) <= max(rows_per_tile, active)
        assert all(lengths[row] > start for row in range(active))
        assert all(lengths[row] <= start for row in range(active, len(lengths)))
        for row in range(active):
            for position in range(start, min(end, lengths[row])):
                covered[row][position] += 1
    assert all(count == 1 for row in covered for count in row)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("budget", [1, 4 * 600 * 3, 64 * 2**20])
def test_tiles_and_packed_rows_pool_the_same(tiny_checkpoint: Path, budget: int, precision: str) -> None:
    tiny_encoder = MilcoEncoder.from_pretrained(tiny_checkpoint, device="cpu", precision=precision)
    tokenized = tiny_encoder.tokenizer(TEXTS)["input_ids"]
    batch = sorted(tokenized, key=len, reverse=True)
    input_ids, attention_mask = tiny_encoder._device_batch(batch)
    lengths = [len(ids) for ids in batch]
    with torch.inference_mode():
        states = tiny_encoder.network.backbone_states(input_ids, attention_mask)
        tiles = english_weights_by_tiles(tiny_encoder.network, states, attention_mask, lengths, budget)
        rows = english_weights_by_rows(tiny_encoder.network, states, lengths, budget)
    assert torch.allclose(tiles, rows, atol=1e-6, rtol=0)
    assert (tiles > 0).sum() > 0
