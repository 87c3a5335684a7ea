"""In-process MILCO encoding: texts -> sparse vectors of both views, pooled and pruned per batch on the device."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
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
from milco_os.encoding.fingerprint import fingerprint
from milco_os.encoding.pruning import PruneSpec
from milco_os.model.device_pruning import BatchTerms, positive_terms, pruned_counts, summed_terms
from milco_os.model.host_copy import vectors_on_host
from milco_os.model.pooling import echo_weights, english_weights
from milco_os.model.precision import cast_weights, matmul_precision, resolve_precision
from milco_os.encoding.sparse import SparseVector, TermVocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchLimits:
    """How much one batch may hold: texts, padded tokens, and bytes of one tile of English logits."""

    batch_size: int
    token_budget: int
    logits_budget_bytes: int


CPU_LIMITS = BatchLimits(batch_size=32, token_budget=16384, logits_budget_bytes=64 * 2**20)
GPU_LIMITS = BatchLimits(batch_size=128, token_budget=32768, logits_budget_bytes=2**30)


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
    """Encodes texts with a MILCO checkpoint; results are in input order and independent of batching.

    Weights are held in the serving ``precision`` (``auto``: bf16 on a GPU, fp32 elsewhere).
    Each batch is pooled and pruned on the device and comes back to the host in one copy.
    ``batch_size``, ``token_budget`` and ``logits_budget_bytes`` default to the device's limits.
    """

    def __init__(
        self,
        network: MilcoNetwork,
        tokenizer,
        vocabulary: TermVocabulary,
        *,
        name: str = "milco",
        device: str | torch.device | None = None,
        precision: str = "auto",
        batch_size: int | None = None,
        token_budget: int | None = None,
        logits_budget_bytes: int | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = resolve_precision(precision, self.device)
        self.network = cast_weights(network, self.precision).to(self.device).eval()
        self.tokenizer = tokenizer
        self.vocabulary = vocabulary
        self.name = name
        limits = GPU_LIMITS if self.device.type == "cuda" else CPU_LIMITS
        self.limits = BatchLimits(batch_size or limits.batch_size, token_budget or limits.token_budget,
                                  logits_budget_bytes or limits.logits_budget_bytes)
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
        encoder = cls(network, tokenizer, vocabulary, name=directory.name, **options)
        encoder.fingerprint = fingerprint(directory)
        return encoder

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_length: int | None = None,
        batch_size: int | None = None,
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
        for batch in plan_batches(lengths, batch_size or self.limits.batch_size, self.limits.token_budget):
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

    def _device_batch(self, batch_ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded input ids and attention mask, built on the host and sent to the device without a wait."""
        lengths = np.array([len(ids) for ids in batch_ids])
        input_ids = np.full((len(batch_ids), int(lengths.max())), self.pad_id, dtype=np.int64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
        attention_mask = (np.arange(input_ids.shape[1]) < lengths[:, None]).astype(np.int64)
        tensors = (torch.from_numpy(input_ids), torch.from_numpy(attention_mask))
        if self.device.type == "cuda":
            return tuple(tensor.pin_memory().to(self.device, non_blocking=True) for tensor in tensors)
        return tensors

    @torch.inference_mode()
    def _encode_batch(self, batch_ids: list[list[int]], spec: PruneSpec, echo: bool) -> list[SparseVector]:
        """Encode, pool and prune one batch (longest text first) on the device; two host waits here."""
        input_ids, attention_mask = self._device_batch(batch_ids)
        network = self.network
        with matmul_precision(self.precision, self.device):
            states = network.backbone_states(input_ids, attention_mask)
            lengths = [len(ids) for ids in batch_ids]
            en = positive_terms(english_weights(network, states, attention_mask, lengths,
                                                self.limits.logits_budget_bytes))
            if echo and network.has_echo:
                m = summed_terms(input_ids, echo_weights(network, states, attention_mask))
            else:
                m = BatchTerms.empty(len(batch_ids), self.device)
        en_kept, m_kept = pruned_counts(en, m, spec)
        return vectors_on_host(en, en_kept, m, m_kept)
