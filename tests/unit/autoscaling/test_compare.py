"""The documented goal on the spike and conversation traces, and the shape of the comparison."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from warmgate.autoscaling.compare import Comparison, compare
from warmgate.autoscaling.scenario import SimConfig, Strategy
from warmgate.autoscaling.traces import load_csv, spike

CONVERSATION = Path(__file__).resolve().parents[2] / "fixtures" / "azure-llm-conv-2023.csv.gz"


@pytest.fixture(scope="module")
def on_spike() -> Comparison:
    return compare(spike(random.Random(0)), SimConfig(), seed=0)


def test_burst_sized_pool_meets_the_goal_on_the_spike(on_spike: Comparison) -> None:
    sized = on_spike.report(Strategy.MIN_2_SIZED)
    assert sized.met_no_ready == 0
    assert sized.sla_miss_ratio <= 0.005 and sized.refused == 0
    assert on_spike.cost_ratio(Strategy.MIN_2_SIZED) <= 1.3


def test_slim_pool_meets_the_goal_on_the_spike_and_the_conversation_trace(on_spike: Comparison) -> None:
    conversation = compare(load_csv(CONVERSATION, random.Random(0)), SimConfig(), seed=0)
    for result in (on_spike, conversation):
        slim = result.report(Strategy.MIN_2_SLIM)
        assert slim.met_no_ready == 0 and slim.refused == 0
        assert slim.sla_miss_ratio <= 0.005
        assert result.priced_ratio(Strategy.MIN_2_SLIM) <= 1.3
        assert result.cost_ratio(Strategy.MIN_2_SLIM) > 1.3  # at full price a standby is a replica


def test_below_two_replicas_the_spike_hurts(on_spike: Comparison) -> None:
    for lower in (Strategy.SCALE_TO_ZERO, Strategy.MIN_1):
        report = on_spike.report(lower)
        assert report.below_floor_s > 0
        assert report.sla_miss_ratio > 0.005
    assert on_spike.report(Strategy.MIN_2).below_floor_s == 0


def test_burst_sized_pool_meets_the_whole_goal_on_the_conversation_trace() -> None:
    trace = load_csv(CONVERSATION, random.Random(0))
    result = compare(trace, SimConfig(), seed=0)
    sized = result.report(Strategy.MIN_2_SIZED)
    assert sized.sla_miss_ratio <= 0.005 and sized.refused == 0
    assert result.cost_ratio(Strategy.MIN_2_SIZED) <= 1.3
    # the fixed one-standby pool pays +50 % for a standby the floor never needs
    assert result.cost_ratio(Strategy.MIN_2_POOL) > 1.3


def test_table_has_one_row_per_strategy(on_spike: Comparison) -> None:
    table = on_spike.table()
    for strategy in Strategy:
        assert f"| {strategy.value} |" in table
    lines = table.splitlines()
    header = next(r for r in lines if r.startswith("| policy |")).split(" | ")
    rows = {r.split(" | ")[0]: r.split(" | ") for r in lines if r.startswith("| ")}
    baseline = rows["| aws-target-tracking-min-2"]
    assert baseline[header.index("x min-2")] == "1.00"  # its own "x min-2" cost ratio
    # the slim pool's standbys at their price: its priced ratio is below its full-price one
    slim = rows[f"| {Strategy.MIN_2_SLIM.value}"]
    priced = header.index("x min-2 priced |")
    assert float(slim[priced].rstrip(" |")) < float(slim[header.index("x min-2")])
