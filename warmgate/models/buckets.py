"""Shape buckets: the pure lookup from an actual shape to the padded shape that serves it.

Nothing here touches a device. A backend pads every batch to ``plan.select(rows, seq)``; warmup
runs every bucket of ``plan.buckets()``; on CUDA each bucket gets one captured graph.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from warmgate.errors import ConfigError
from warmgate.models.base import Bucket

DEFAULT_SEQ_LENS: tuple[int, ...] = (16, 32, 64, 128, 256)


def powers_of_two(limit: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to and including ``limit`` (``limit`` itself is always the last one)."""
    if limit < 1:
        raise ConfigError(f"a bucket limit must be >= 1, got {limit}")
    out: list[int] = []
    n = 1
    while n < limit:
        out.append(n)
        n *= 2
    out.append(limit)
    return tuple(out)


@dataclass(frozen=True)
class BucketPlan:
    """Sorted batch sizes × sorted sequence lengths (``seq_lens == ()`` for models without a
    sequence axis)."""

    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for label, values in (("batch_sizes", self.batch_sizes), ("seq_lens", self.seq_lens)):
            if list(values) != sorted(set(values)) or any(v < 1 for v in values):
                raise ConfigError(f"{label} must be strictly increasing positive integers, got {values}")
        if not self.batch_sizes:
            raise ConfigError("a bucket plan needs at least one batch size")

    @classmethod
    def default(cls, max_batch: int, seq_lens: Sequence[int] = ()) -> BucketPlan:
        return cls(powers_of_two(max_batch), tuple(seq_lens))

    @property
    def max_batch(self) -> int:
        return self.batch_sizes[-1]

    @property
    def max_seq(self) -> int:
        return self.seq_lens[-1] if self.seq_lens else 0

    def batch_for(self, rows: int) -> int | None:
        """Smallest batch size >= ``rows``, or None when ``rows`` exceeds every bucket."""
        i = bisect.bisect_left(self.batch_sizes, rows)
        return self.batch_sizes[i] if i < len(self.batch_sizes) else None

    def seq_for(self, length: int) -> int | None:
        """Smallest sequence length >= ``length`` (0 when the plan has no sequence axis)."""
        if not self.seq_lens:
            return 0
        i = bisect.bisect_left(self.seq_lens, length)
        return self.seq_lens[i] if i < len(self.seq_lens) else None

    def select(self, rows: int, seq: int = 0) -> Bucket | None:
        """The smallest bucket that fits ``rows`` × ``seq``, or None when none does."""
        b, s = self.batch_for(rows), self.seq_for(seq)
        if b is None or s is None:
            return None
        return Bucket(b, s)

    def buckets(self) -> list[Bucket]:
        seqs = self.seq_lens or (0,)
        return [Bucket(b, s) for s in seqs for b in self.batch_sizes]
