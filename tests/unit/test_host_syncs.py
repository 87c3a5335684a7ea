"""The encoder waits for its device a fixed number of times per batch, however many texts the batch holds.

On a GPU every call below blocks the host until the device has caught up: reading a
value (``item``, ``tolist``, ``bool``/``int`` of a tensor), copying to the host
(``cpu``, ``to("cpu")``), and anything whose output size depends on values
(``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``). A torch function
mode sees each such call even on the CPU, so the count is checked without a GPU. On the
CPU, ``to(device)`` cannot be told from a copy to the host, so it is counted only in
milco-os's own code (the libraries' calls move tensors to the model's device).
"""

from __future__ import annotations

import sys

import torch
from torch.overrides import TorchFunctionMode

from milco_os.model import MilcoEncoder

Tensor = torch.Tensor
WAITING_CALLS = {
    Tensor.cpu, Tensor.item, Tensor.tolist, Tensor.__bool__, Tensor.__int__, Tensor.__float__, Tensor.__index__,
    Tensor.nonzero, torch.nonzero, Tensor.masked_select, torch.masked_select, Tensor.unique, torch.unique,
    torch.argwhere, Tensor.argwhere,
}
TEXTS = ["Berlin ist die Hauptstadt von Deutschland.", "東京は日本の首都", "Search engines rank documents.",
         "Быстрая коричневая лиса", "a", "القاهرة هي عاصمة مصر"]


def to_host_from_milco_os(args: tuple, kwargs: dict) -> bool:
    targets = list(args[1:]) + list(kwargs.values())
    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller.startswith("milco_os.") and any(str(target) == "cpu" for target in targets)


def boolean_index(args: tuple) -> bool:
    index = args[1] if len(args) > 1 else None
    indices = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in indices)


class HostWaits(TorchFunctionMode):
    """Counts the calls that make the host wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in WAITING_CALLS or (func is Tensor.to and to_host_from_milco_os(args, kwargs))
                or (func is Tensor.__getitem__ and boolean_index(args))):
            self.count += 1
        return func(*args, **kwargs)


def waits_for(encoder: MilcoEncoder, texts: list[str], **options) -> int:
    with HostWaits() as waits:
        encoder.encode(texts, **options)
    return waits.count


def test_the_counter_sees_the_calls_that_wait() -> None:
    with HostWaits() as waits:
        x = torch.tensor([0.0, 2.0, 3.0])
        x.cpu()
        x[x > 1].tolist()
        torch.nonzero(x)
    assert waits.count == 4


def test_waits_per_batch_do_not_grow_with_the_batch(tiny_encoder: MilcoEncoder) -> None:
    counts = {size: waits_for(tiny_encoder, (TEXTS * 6)[:size], batch_size=64, prune="mass:0.9")
              for size in (1, 6, 36)}
    assert len(set(counts.values())) == 1, counts
    assert counts[1] <= 3, counts


def test_waits_grow_with_batches_not_with_texts(tiny_encoder: MilcoEncoder) -> None:
    one_batch = waits_for(tiny_encoder, TEXTS[:4], batch_size=4, prune="topk:20")
    two_batches = waits_for(tiny_encoder, TEXTS[:4], batch_size=2, prune="topk:20")
    assert two_batches == 2 * one_batch
