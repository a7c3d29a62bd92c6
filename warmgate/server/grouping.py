"""Which queued requests form the next batch: pure functions of sizes and limits, no I/O, no clock.

The batcher keeps one FIFO queue per bucket key and asks these functions what to do, the way
vLLM's CUDA graph dispatcher is a pure lookup apart from capture and replay:

* :func:`take` — how many items from the head of one key's queue make the next batch;
* :func:`full` — whether that queue already fills a batch (no reason to wait for more);
* :func:`oldest` — which key to serve next (the one whose head has waited longest).

The limits come from the loaded model (:class:`BatchLimits`), never from configuration alone:
a model whose batch axis is fixed takes exactly one request per call.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchLimits:
    """What one ``Model.infer`` call may take.

    ``max_rows``: rows (the sum of ``Item.size``) in one call; a single item larger than this
    still runs, alone (the model runs it eagerly or has refused it at ``prepare``).
    ``fixed``: the batch axis is fixed, so items are never concatenated: one item per call.
    """

    max_rows: int
    fixed: bool = False

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {self.max_rows}")


def take(sizes: Sequence[int], limits: BatchLimits) -> int:
    """How many items from the head of ``sizes`` (one key's queue, in arrival order) form the next
    batch: the longest prefix within ``max_rows``, at least one item when any is queued."""
    if not sizes:
        return 0
    if limits.fixed:
        return 1
    rows = count = 0
    for size in sizes:
        if count and rows + size > limits.max_rows:
            break
        rows += size
        count += 1
    return count


def full(sizes: Sequence[int], limits: BatchLimits) -> bool:
    """True when the queue already holds a whole batch, so waiting for more cannot grow it."""
    if not sizes:
        return False
    if limits.fixed:
        return True
    return take(sizes, limits) < len(sizes) or sum(sizes) >= limits.max_rows


def oldest(heads: Mapping[Hashable, float]) -> Hashable | None:
    """The key whose head request was enqueued first (``heads``: key → enqueue time)."""
    if not heads:
        return None
    return min(heads, key=lambda key: heads[key])
