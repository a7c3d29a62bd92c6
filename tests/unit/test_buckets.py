"""The pure bucket lookup: the chosen bucket is the smallest that fits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warmgate.errors import ConfigError
from warmgate.models.base import Bucket
from warmgate.models.buckets import BucketPlan, powers_of_two

increasing = st.lists(st.integers(1, 512), min_size=1, max_size=8, unique=True).map(
    lambda xs: tuple(sorted(xs))
)


@given(batch=increasing, seq=increasing, rows=st.integers(1, 600), length=st.integers(0, 600))
def test_select_is_the_smallest_bucket_that_fits(batch, seq, rows, length) -> None:  # type: ignore[no-untyped-def]
    plan = BucketPlan(batch, seq)
    chosen = plan.select(rows, length)
    fitting = [b for b in plan.buckets() if b.batch >= rows and b.seq >= length]
    if not fitting:
        assert chosen is None
        return
    assert chosen is not None
    assert chosen in fitting
    assert all(chosen.batch <= b.batch and chosen.seq <= b.seq for b in fitting)


@given(limit=st.integers(1, 4096))
def test_powers_of_two_end_at_the_limit(limit: int) -> None:
    sizes = powers_of_two(limit)
    assert sizes[0] == 1 and sizes[-1] == limit
    assert list(sizes) == sorted(set(sizes))
    assert all(b == 2 * a for a, b in itertools.pairwise(sizes[:-1]))


def test_plan_without_sequence_axis() -> None:
    plan = BucketPlan.default(8)
    assert plan.buckets() == [Bucket(1), Bucket(2), Bucket(4), Bucket(8)]
    assert plan.select(3) == Bucket(4)
    assert plan.select(9) is None


@pytest.mark.parametrize("bad", [(), (4, 2), (1, 1), (0, 2)])
def test_invalid_plans_are_config_errors(bad: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError):
        BucketPlan(bad)
