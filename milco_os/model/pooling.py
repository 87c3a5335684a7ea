"""MILCO's two views pooled for a whole padded batch on its device, with no loop over texts.

The English view is a max over each text's positions of ``[positions, 30522]`` logits.
Two ways compute it, each best where it runs:

- on a GPU, by tiles of positions of the padded batch: large dense matmuls and one
  ``amax`` per tile; padding costs a little wasted projection, kernel launches cost more;
- on a CPU, by chunks of the real positions only, packed: there the projection is most
  of the time and small matmuls are slow, while a scatter-max over rows is nearly free.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from milco_os.model.network import MilcoNetwork


def position_tiles(lengths: Sequence[int], rows_per_tile: int) -> Iterator[tuple[int, int, int]]:
    """``(start, end, active)`` tiles over the positions of a batch whose ``lengths`` come longest first.

    ``active`` is the number of rows with text at ``start`` (a prefix of the batch); a tile
    holds at most ``rows_per_tile`` rows of logits (and at least one position). A tile that
    would run past the end of its shortest active text stops there when it is still half
    full, so little of the projection falls on padding.
    """
    start = 0
    while start < lengths[0]:
        active = sum(1 for length in lengths if length > start)
        end = min(lengths[0], start + max(1, rows_per_tile // active))
        shortest = lengths[active - 1]
        if shortest < end and 2 * (shortest - start) * active >= rows_per_tile:
            end = shortest
        yield start, end, active
        start = end


def english_weights(network: MilcoNetwork, states: torch.Tensor, attention_mask: torch.Tensor,
                    lengths: Sequence[int], logits_budget_bytes: int) -> torch.Tensor:
    """``log1p(relu(max over positions of mask * logits))`` per text: ``[batch, en_vocab]`` float32.

    Rows come longest first; ``lengths`` are known on the host. Logits are computed within
    ``logits_budget_bytes`` at a time and folded into a running max started at 0, which is
    what the mask's zeros and the relu give.
    """
    if states.device.type == "cuda":
        return english_weights_by_tiles(network, states, attention_mask, lengths, logits_budget_bytes)
    return english_weights_by_rows(network, states, lengths, logits_budget_bytes)


def english_weights_by_tiles(network: MilcoNetwork, states: torch.Tensor, attention_mask: torch.Tensor,
                             lengths: Sequence[int], logits_budget_bytes: int) -> torch.Tensor:
    """The English view over ``position_tiles`` of the padded batch; only tiles where a text ends are masked."""
    features = network.en_features(states)
    vocab_size, hidden = network.en_vocab_size, features.shape[-1]
    padding = attention_mask == 0
    pooled = torch.zeros((len(lengths), vocab_size), device=features.device, dtype=torch.float32)
    rows_per_tile = max(1, logits_budget_bytes // (vocab_size * features.element_size()))
    for start, end, active in position_tiles(lengths, rows_per_tile):
        rows = features[:active, start:end].reshape(-1, hidden)
        logits = network.en_logits(rows).view(active, end - start, vocab_size)
        if lengths[active - 1] < end:
            logits.masked_fill_(padding[:active, start:end, None], 0)
        torch.maximum(pooled[:active], logits.amax(dim=1), out=pooled[:active])
    return pooled.log1p_()


def english_weights_by_rows(network: MilcoNetwork, states: torch.Tensor, lengths: Sequence[int],
                            logits_budget_bytes: int) -> torch.Tensor:
    """The English view over chunks of the batch's real positions, packed, each scatter-maxed into its texts."""
    rows, positions, hidden = states.shape
    packed = states.reshape(-1, hidden)
    if min(lengths) < positions:
        real = np.concatenate([row * positions + np.arange(length) for row, length in enumerate(lengths)])
        packed = packed.index_select(0, torch.as_tensor(real, device=states.device))
    features = network.en_features(packed)
    text_of_row = torch.as_tensor(np.repeat(np.arange(rows), lengths), device=states.device)
    vocab_size = network.en_vocab_size
    pooled = torch.zeros((rows, vocab_size), device=features.device, dtype=torch.float32)
    rows_per_chunk = max(1, logits_budget_bytes // (vocab_size * features.element_size()))
    for start in range(0, features.shape[0], rows_per_chunk):
        logits = network.en_logits(features[start:start + rows_per_chunk]).to(torch.float32)
        texts = text_of_row[start:start + rows_per_chunk, None].expand_as(logits)
        pooled.scatter_reduce_(0, texts, logits, "amax", include_self=True)
    return pooled.log1p_()


def echo_weights(network: MilcoNetwork, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """LexEcho weight per position (0 on padding), float32: ``[batch, positions]``; summed per id later."""
    return network.echo_weights(states, attention_mask.to(states.dtype)).float()
