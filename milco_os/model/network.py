"""The MILCO network, module names matching the released checkpoints' state-dict keys.

XLM-RoBERTa backbone (``m_model``) -> connector (``projector`` + GELU) -> BERT masked-LM
head (``mlm_head``) for the English view; ``echo`` (a Linear on the backbone output)
times the learned ``scale`` for the LexEcho source view.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional
from transformers import XLMRobertaConfig, XLMRobertaModel

EN_LAYER_NORM_EPS = 1e-12


class HeadTransform(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=EN_LAYER_NORM_EPS)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(functional.gelu(self.dense(hidden_states)))


class Predictions(nn.Module):
    """``decoder`` shares its bias with ``bias`` as in BERT (the released ``decoder.bias`` is tied to it)."""

    def __init__(self, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.transform = HeadTransform(hidden)
        self.decoder = nn.Linear(hidden, vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(vocab_size))


class MlmHead(nn.Module):
    def __init__(self, hidden: int, vocab_size: int) -> None:
        super().__init__()
        self.predictions = Predictions(hidden, vocab_size)


class MilcoNetwork(nn.Module):
    """Computes the per-position pieces MILCO pools: English logits and echo weights."""

    def __init__(self, backbone: XLMRobertaConfig, en_hidden: int, en_vocab_size: int, echo: bool) -> None:
        super().__init__()
        self.m_model = XLMRobertaModel(backbone, add_pooling_layer=False)
        self.projector = nn.Linear(backbone.hidden_size, en_hidden)
        self.mlm_head = MlmHead(en_hidden, en_vocab_size)
        self.echo = nn.Linear(backbone.hidden_size, 1) if echo else None
        self.scale = nn.Parameter(torch.ones(())) if echo else None

    @property
    def has_echo(self) -> bool:
        return self.echo is not None

    @property
    def en_vocab_size(self) -> int:
        return self.mlm_head.predictions.decoder.out_features

    @property
    def m_vocab_size(self) -> int:
        return self.m_model.config.vocab_size

    def backbone_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``last_hidden_state`` of the XLM-R backbone: [batch, seq, m_hidden]."""
        return self.m_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def en_features(self, states: torch.Tensor) -> torch.Tensor:
        """Connector and head transform, before the vocabulary projection: [batch, seq, en_hidden]."""
        return self.mlm_head.predictions.transform(functional.gelu(self.projector(states)))

    def en_logits(self, features: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for some positions' features: [..., en_vocab]."""
        predictions = self.mlm_head.predictions
        return functional.linear(features, predictions.decoder.weight, predictions.bias)

    def echo_weights(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``relu(echo(H_i)) * mask_i * scale`` per position: [batch, seq]."""
        if self.echo is None or self.scale is None:
            raise RuntimeError("this checkpoint has no echo head")
        return functional.relu(self.echo(states).squeeze(-1)) * attention_mask * self.scale
