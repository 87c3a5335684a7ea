"""A batch's pruned terms off the device in one copy, then one SparseVector per text built on the host."""

from __future__ import annotations

import numpy as np
import torch

from milco_os.encoding.sparse import SparseVector
from milco_os.model.device_pruning import BatchTerms


def copy_to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a host array: through a pinned buffer and one stream synchronisation on a GPU."""
    if tensor.device.type != "cuda":
        return tensor.cpu().numpy()
    host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    host.copy_(tensor, non_blocking=True)
    torch.cuda.current_stream(tensor.device).synchronize()
    return host.numpy()


def vectors_on_host(en: BatchTerms, en_kept: torch.Tensor, m: BatchTerms, m_kept: torch.Tensor) -> list[SparseVector]:
    """Each text's first ``en_kept``/``m_kept`` terms of each view, as SparseVectors (heaviest first).

    Ids, weights (their float32 bits) and keep counts of both views travel as one int32 buffer.
    """
    parts = [en.ids, en.weights.float().view(torch.int32), m.ids, m.weights.float().view(torch.int32),
             en_kept.unsqueeze(1), m_kept.unsqueeze(1)]
    packed = copy_to_host(torch.cat([part.to(torch.int32).flatten() for part in parts]))
    rows = en_kept.shape[0]
    shapes = [(rows, part.shape[1]) for part in parts]
    arrays, offset = [], 0
    for shape in shapes:
        size = shape[0] * shape[1]
        arrays.append(packed[offset:offset + size].reshape(shape))
        offset += size
    en_ids, en_weights, m_ids, m_weights, en_counts, m_counts = arrays
    en_weights, m_weights = en_weights.view(np.float32), m_weights.view(np.float32)
    return [SparseVector(en_ids[row, :ek].copy(), en_weights[row, :ek].copy(), m_ids[row, :mk].copy(),
                         m_weights[row, :mk].copy())
            for row, (ek, mk) in enumerate(zip(en_counts[:, 0].tolist(), m_counts[:, 0].tolist()))]
