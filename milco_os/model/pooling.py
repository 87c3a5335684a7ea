"""MILCO's two views pooled for a whole padded batch on its device, with no loop over texts."""

from __future__ import annotations

import torch

from milco_os.model.network import MilcoNetwork


def english_weights(network: MilcoNetwork, states: torch.Tensor, attention_mask: torch.Tensor, shortest: int,
                    logits_budget_bytes: int) -> torch.Tensor:
    """``log1p(relu(max over positions of mask * logits))`` per text: ``[batch, en_vocab]`` float32.

    The vocabulary projection runs over tiles of positions, ``[batch, tile, en_vocab]`` within
    ``logits_budget_bytes``, each folded into a running max started at 0, which is what
    the mask's zeros and the relu give. Only tiles reaching past the ``shortest`` text hold
    padding, and only those are masked.
    """
    features = network.en_features(states)
    rows, length = attention_mask.shape
    vocab_size = network.en_vocab_size
    tile = max(1, logits_budget_bytes // (rows * vocab_size * features.element_size()))
    padding = attention_mask == 0
    pooled = torch.zeros((rows, vocab_size), device=features.device, dtype=torch.float32)
    for start in range(0, length, tile):
        end = min(length, start + tile)
        logits = network.en_logits(features[:, start:end])
        if end > shortest:
            logits.masked_fill_(padding[:, start:end, None], 0)
        torch.maximum(pooled, logits.amax(dim=1), out=pooled)
    return pooled.log1p_()


def echo_weights(network: MilcoNetwork, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """LexEcho weight per position (0 on padding), float32: ``[batch, positions]``; summed per id later."""
    return network.echo_weights(states, attention_mask.to(states.dtype)).float()
