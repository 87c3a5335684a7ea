"""In-process MILCO encoding: texts -> sparse vectors of both views, pruned on the device."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from milco_os.model.checkpoint import (
    CheckpointError,
    build_network,
    en_vocabulary_path,
    load_tokenizer,
    resolve_directory,
)
from milco_os.model.network import MilcoNetwork
from milco_os.encoding.contract import SparseEncoder, check_texts
from milco_os.encoding.pruning import PruneSpec
from milco_os.model.device_pruning import prune_row
from milco_os.encoding.sparse import SparseVector, TermVocabulary

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 32
DEFAULT_TOKEN_BUDGET = 16384
DEFAULT_LOGITS_BUDGET_BYTES = 64 * 1024 * 1024
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TokenizedText:
    position: int
    ids: list[int]


def plan_batches(lengths: Sequence[int], batch_size: int, token_budget: int) -> list[list[int]]:
    """Indices grouped longest first, each batch within ``batch_size`` texts and ``token_budget`` padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) >= batch_size or longest * (len(current) + 1) > token_budget):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class MilcoEncoder(SparseEncoder):
    """Encodes texts with a MILCO checkpoint; results are in input order and independent of batching."""

    def __init__(
        self,
        network: MilcoNetwork,
        tokenizer,
        vocabulary: TermVocabulary,
        *,
        name: str = "milco",
        device: str | torch.device | None = None,
        precision: str = "auto",
        token_budget: int = DEFAULT_TOKEN_BUDGET,
        logits_budget_bytes: int = DEFAULT_LOGITS_BUDGET_BYTES,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.network = network.to(self.device).eval()
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.name = name
        self.precision = precision
        self.token_budget = token_budget
        self.logits_budget_bytes = logits_budget_bytes
        config = network.m_model.config
        self.max_positions = config.max_position_embeddings - config.pad_token_id - 1
        self.pad_id = config.pad_token_id
        self._warned_truncation = False
        self.truncated_count = 0

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **options) -> MilcoEncoder:
        """Load a checkpoint directory (or a Hugging Face id when the hub is reachable)."""
        directory = resolve_directory(name_or_path)
        network, _ = build_network(directory)
        tokenizer = load_tokenizer(directory)
        m_pieces = tokenizer.convert_ids_to_tokens(list(range(network.m_vocab_size)))
        vocabulary = TermVocabulary.from_files(en_vocabulary_path(directory), m_pieces)
        if len(vocabulary.en_pieces) != network.en_vocab_size:
            raise CheckpointError(
                f"{en_vocabulary_path(directory)} has {len(vocabulary.en_pieces)} pieces; "
                f"the checkpoint's English head has {network.en_vocab_size}."
            )
        return cls(network, tokenizer, vocabulary, name=directory.name, **options)

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        prune: str | PruneSpec | None = None,
        echo: bool = True,
    ) -> list[SparseVector]:
        """One SparseVector per text, in input order. Empty or blank texts give empty vectors."""
        checked = check_texts(texts)
        spec = PruneSpec.parse(prune)
        limit = min(max_length or self.max_positions, self.max_positions)
        results: list[SparseVector] = [SparseVector.empty() for _ in checked]
        tokenized = self._tokenize(checked, limit)
        lengths = [len(item.ids) for item in tokenized]
        for batch in plan_batches(lengths, batch_size, self.token_budget):
            items = [tokenized[i] for i in batch]
            for item, vector in zip(items, self._encode_batch([item.ids for item in items], spec, echo)):
                results[item.position] = vector
        return results

    def _tokenize(self, texts: list[str], limit: int) -> list[TokenizedText]:
        non_blank = [(position, text) for position, text in enumerate(texts) if text.strip()]
        if not non_blank:
            return []
        encoded = self.tokenizer([text for _, text in non_blank], truncation=True, max_length=limit)
        for encoding in encoded.encodings:
            if encoding.overflowing:
                self._note_truncation(limit)
        return [TokenizedText(position, ids) for (position, _), ids in zip(non_blank, encoded["input_ids"])]

    def _note_truncation(self, limit: int) -> None:
        self.truncated_count += 1
        if not self._warned_truncation:
            self._warned_truncation = True
            log.warning("texts longer than %d tokens are truncated; MilcoEncoder.truncated_count counts them",
                        limit)

    def _autocast(self):
        if self.device.type != "cuda" or self.precision == "fp32":
            return nullcontext()
        dtype = torch.float16 if self.precision == "fp16" else torch.bfloat16
        return torch.autocast("cuda", dtype=dtype)

    @torch.inference_mode()
    def _encode_batch(self, batch_ids: list[list[int]], spec: PruneSpec, echo: bool) -> list[SparseVector]:
        longest = max(len(ids) for ids in batch_ids)
        input_ids = torch.full((len(batch_ids), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch_ids), longest), dtype=torch.long)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention_mask[row, : len(ids)] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        with self._autocast():
            states = self.network.backbone_states(input_ids, attention_mask)
            en = self._en_weights(states, attention_mask)
            m = self._echo_weights(states, input_ids, attention_mask) if echo and self.network.has_echo else None
        return [self._to_sparse(en[row], None if m is None else m[row], spec) for row in range(len(batch_ids))]

    def _en_weights(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """log1p(relu(max over positions of mask * logits)) per text.

        Only real positions are projected onto the vocabulary: they are gathered into one
        matrix (grouped by text) and multiplied in row chunks that fit the logits budget,
        each text keeping a running max over its rows. Padding rows would contribute 0,
        which a running max started at 0 reproduces after relu.
        """
        features = self.network.en_features(states)[attention_mask.bool()]
        vocab_size = self.network.en_vocab_size
        chunk = max(1, self.logits_budget_bytes // (vocab_size * 4))
        lengths = attention_mask.sum(dim=1).tolist()
        offsets = [0]
        for length in lengths:
            offsets.append(offsets[-1] + length)
        pooled = torch.zeros((len(lengths), vocab_size), device=features.device, dtype=torch.float32)
        for start in range(0, offsets[-1], chunk):
            end = min(offsets[-1], start + chunk)
            logits = self.network.en_logits(features[start:end])
            for row, (first, last) in enumerate(zip(offsets, offsets[1:])):
                if first < end and last > start:
                    rows = logits[max(first, start) - start : min(last, end) - start]
                    pooled[row] = torch.maximum(pooled[row], rows.amax(dim=0).float())
        return torch.log1p(torch.relu(pooled))

    def _echo_weights(self, states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Echo weights scattered onto the input ids of each text, repeated ids summed: [batch, m_vocab]."""
        weights = self.network.echo_weights(states, attention_mask.to(states.dtype)).float()
        pooled = torch.zeros((input_ids.shape[0], self.network.m_vocab_size), device=states.device)
        return pooled.scatter_add_(1, input_ids, weights)

    def _to_sparse(self, en_row: torch.Tensor, m_row: torch.Tensor | None, spec: PruneSpec) -> SparseVector:
        en_ids = torch.nonzero(en_row > 0).squeeze(1)
        m_ids = torch.nonzero(m_row > 0).squeeze(1) if m_row is not None else en_ids[:0]
        m_weights = m_row[m_ids] if m_row is not None else en_row[:0]
        pruned = prune_row(en_ids, en_row[en_ids], m_ids, m_weights, spec, self.network.en_vocab_size)
        en_ids, en_weights, m_ids, m_weights = (tensor.cpu().numpy() for tensor in pruned)
        return SparseVector(en_ids.astype("int32"), en_weights.astype("float32"),
                            m_ids.astype("int32"), m_weights.astype("float32"))

