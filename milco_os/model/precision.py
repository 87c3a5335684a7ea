"""Serving precision, chosen once at load: the dtype the weights are held in, and whether fp32 matmuls use TF32."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from milco_os.model.config import check_precision

WEIGHT_DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` is bf16 on a GPU and fp32 elsewhere; other names are checked and kept."""
    if check_precision(precision) == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


def cast_weights(network: nn.Module, precision: str) -> nn.Module:
    """The network with every weight in the precision's dtype (a copy is never kept)."""
    return network.to(WEIGHT_DTYPES[precision])


@contextmanager
def matmul_precision(precision: str, device: torch.device) -> Iterator[None]:
    """On a GPU, TF32 tensor-core matmuls for ``tf32`` and strict fp32 for ``fp32``; the process setting is
    restored after."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before
