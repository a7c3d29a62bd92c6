"""Which queued requests form the next batch: pure functions of sizes and limits, no I/O, no clock.

The batcher keeps one FIFO queue per bucket key and asks these functions what to do, the way
vLLM's CUDA graph dispatcher is a pure lookup apart from capture and replay:

* :func:`take` — how many items from the head of one key's queue make the next batch;
* :func:`full` — whether that queue already fills a batch (no reason to wait for more);
* :func:`oldest` — which key to serve next (the one whose head has waited longest);
* :func:`regroup_wait` — how long, after a run frees the backend, a much smaller batch waits
  for batch-mates, so a saturated backend runs back-to-back full batches instead of
  alternating a few rows (the ones left queued) with many (the callers of the last batch,
  still on their way back).

The limits come from the loaded model (:class:`BatchLimits`), never from configuration alone:
a model whose batch axis is fixed takes exactly one request per call.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

# After a run frees the backend, a queue holding fewer rows than the last batch waits up to this
# fraction of that run for batch-mates, and never more than REGROUP_MAX_S.
REGROUP_FRACTION = 0.25
REGROUP_MAX_S = 0.020


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


def regroup_wait(queued_rows: int, last_rows: int, last_run_s: float, limits: BatchLimits) -> float:
    """Seconds after the last run ended that a queue of ``queued_rows`` waits for batch-mates
    (0: run at once). Only when it holds fewer rows than the last batch (same key), as under
    saturation, where the last batch's callers are on their way back: at low load the last
    batch was as small, so nothing waits."""
    if limits.fixed or queued_rows >= last_rows:
        return 0.0
    return min(REGROUP_FRACTION * last_run_s, REGROUP_MAX_S)
