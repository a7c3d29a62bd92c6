"""The documented goal on the spike trace, and the shape of the comparison."""

from __future__ import annotations

import random

import pytest

from warmgate.autoscaling.compare import Comparison, compare
from warmgate.autoscaling.scenario import SimConfig, Strategy
from warmgate.autoscaling.traces import spike


@pytest.fixture(scope="module")
def on_spike() -> Comparison:
    return compare(spike(random.Random(0)), SimConfig(), seed=0)


def test_min_2_with_a_warm_pool_meets_the_goal(on_spike: Comparison) -> None:
    pooled = on_spike.report(Strategy.MIN_2_POOL)
    assert pooled.met_no_ready == 0
    assert pooled.sla_miss_ratio <= 0.005
    assert on_spike.cost_ratio(Strategy.MIN_2_POOL) <= 1.3
    assert pooled.pool_claims >= 1  # the pool, not luck, absorbed the ramp


def test_without_the_pool_the_spike_hurts(on_spike: Comparison) -> None:
    plain = on_spike.report(Strategy.MIN_2)
    assert plain.met_no_ready > 0
    assert plain.sla_miss_ratio > 0.005
    assert plain.below_floor_s == 0
    for lower in (Strategy.SCALE_TO_ZERO, Strategy.MIN_1):
        assert on_spike.report(lower).below_floor_s > 0


def test_table_has_one_row_per_strategy(on_spike: Comparison) -> None:
    table = on_spike.table()
    for strategy in Strategy:
        assert f"| {strategy.value} |" in table
    baseline = next(r for r in table.splitlines() if r.startswith("| aws-target-tracking-min-2 |"))
    assert baseline.split(" | ")[-2] == "1.00"  # its own "x min-2" cost ratio
