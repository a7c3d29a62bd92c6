"""The batcher's grouping as pure functions: properties over every queue and limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warmgate.server import grouping
from warmgate.server.grouping import BatchLimits

sizes = st.lists(st.integers(min_value=1, max_value=40), max_size=30)
limits = st.builds(BatchLimits, st.integers(min_value=1, max_value=64), st.booleans())


def partition(queue: list[int], lim: BatchLimits) -> list[list[int]]:
    """Take batches from the head until the queue is empty, as the batcher does."""
    batches = []
    while queue:
        n = grouping.take(queue, lim)
        batches.append(queue[:n])
        queue = queue[n:]
    return batches


@given(sizes, limits)
def test_batches_partition_the_queue_in_arrival_order(queue: list[int], lim: BatchLimits) -> None:
    batches = partition(list(queue), lim)
    assert [s for batch in batches for s in batch] == queue
    assert all(batches)  # every batch takes at least one item: nothing starves


@given(sizes, limits)
def test_a_batch_never_exceeds_max_rows_unless_one_item_does(queue: list[int], lim: BatchLimits) -> None:
    for batch in partition(list(queue), lim):
        assert sum(batch) <= lim.max_rows or len(batch) == 1


@given(sizes, limits)
def test_batches_are_as_large_as_the_limit_allows(queue: list[int], lim: BatchLimits) -> None:
    batches = partition(list(queue), lim)
    for batch, following in itertools.pairwise(batches):
        if not lim.fixed:  # the next item would not have fitted
            assert sum(batch) + following[0] > lim.max_rows


@given(sizes, st.integers(min_value=1, max_value=64))
def test_a_fixed_batch_axis_takes_one_item_per_call(queue: list[int], max_rows: int) -> None:
    batches = partition(list(queue), BatchLimits(max_rows, fixed=True))
    assert [len(b) for b in batches] == [1] * len(queue)


@given(sizes, limits)
def test_full_means_waiting_cannot_grow_the_batch(queue: list[int], lim: BatchLimits) -> None:
    is_full = grouping.full(queue, lim)
    n = grouping.take(queue, lim)
    if is_full:  # the head batch is closed: a new item could not join it
        assert lim.fixed or n < len(queue) or sum(queue) >= lim.max_rows
    else:  # room left: one more row would still fit in this batch
        assert queue == [] or (n == len(queue) and sum(queue) < lim.max_rows and not lim.fixed)


@given(st.dictionaries(st.text(max_size=3), st.floats(allow_nan=False, allow_infinity=False), max_size=8))
def test_oldest_is_the_key_whose_head_waited_longest(heads: dict[str, float]) -> None:
    key = grouping.oldest(heads)
    if not heads:
        assert key is None
    else:
        assert heads[key] == min(heads.values())


def test_limits_need_at_least_one_row() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        BatchLimits(0)


@given(
    st.integers(min_value=0, max_value=64),
    st.integers(min_value=1, max_value=64),
    st.floats(min_value=0.0, max_value=10.0),
    limits,
)
def test_regroup_waits_only_for_a_queue_smaller_than_the_last_batch(
    queued: int, last: int, run_s: float, lim: BatchLimits
) -> None:
    wait = grouping.regroup_wait(queued, last, run_s, lim)
    if lim.fixed or queued >= last:
        assert wait == 0.0
    else:
        assert wait == min(grouping.REGROUP_FRACTION * run_s, grouping.REGROUP_MAX_S)
