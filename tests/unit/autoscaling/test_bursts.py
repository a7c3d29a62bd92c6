"""The generated burst families have the shape the goal names: x5 to x15 within 10 s, held 30 s to 15 min."""

from __future__ import annotations

import pytest

from warmgate.autoscaling.bursts import (
    FAMILIES,
    RECURRING,
    SEEDS,
    BurstFamily,
    RecurringBursts,
    burst_rate,
    burst_trace,
    evaluate_all,
    evaluate_family,
)
from warmgate.autoscaling.scenario import SimConfig, Strategy, for_strategy


def test_the_grid_spans_the_goal() -> None:
    assert {f.factor for f in FAMILIES} == {5.0, 10.0, 15.0}
    assert {f.hold_s for f in FAMILIES} == {30.0, 180.0, 900.0}
    assert len(SEEDS) >= 8


def test_the_rate_reaches_its_factor_within_the_rise_and_holds() -> None:
    rate = burst_rate(2.0, 12.0, at_s=100.0, rise_s=10.0, hold_s=30.0)
    assert rate(99.0) == 2.0
    assert rate(105.0) == pytest.approx(2.0 + 22.0 / 2)
    assert rate(110.0) == pytest.approx(24.0) and rate(139.9) == pytest.approx(24.0)
    assert rate(160.0) == 2.0


@pytest.mark.parametrize("family", [f for f in FAMILIES if f.hold_s == 180.0], ids=lambda f: f.name)
def test_every_seed_is_a_burst_of_its_family(family: BurstFamily) -> None:
    for seed in SEEDS:
        trace = burst_trace(family, seed)
        assert trace.name == f"{family.name}/seed{seed}"
        arrivals = trace.arrivals
        base = sum(1 for t in arrivals if t < 100.0) / 100.0
        busiest = max(
            sum(1 for t in arrivals if s <= t < s + 60.0) for s in range(0, int(trace.duration_s), 30)
        )
        assert busiest / 60.0 > 0.6 * family.factor * base  # the plateau is there, at about the factor
        assert burst_trace(family, seed).arrivals == arrivals  # deterministic per (family, seed)


def test_a_recurring_hour_holds_its_bursts_at_their_factor_and_base_load_between() -> None:
    family = RecurringBursts(12.0, 8)
    for seed in SEEDS[:3]:
        trace = family.trace(seed)
        assert trace.name == f"recurring-x12-8-in-60min/seed{seed}" and trace.duration_s == 3600.0
        arrivals = trace.arrivals
        per_minute = [sum(1 for t in arrivals if s <= t < s + 60.0) / 60.0 for s in range(0, 3600, 60)]
        base = per_minute[0]  # no burst before lead_s (120 s)
        assert max(per_minute) > 0.6 * 12.0 * base  # a plateau at about the factor
        assert sorted(per_minute)[len(per_minute) // 2] < 3.0 * base  # base load most of the hour
        assert family.trace(seed).arrivals == arrivals  # deterministic per (family, seed)


# The families the default meets on every seed (docs/autoscaling.md, "Where the goal stands"):
# x5, and x10 for 3 min since the batching gain was measured on today's server; of the
# recurring hours, x8 (x12 is not: its first burst meets no standby).
MET = (
    *(f for f in FAMILIES if f.factor == 5.0 or (f.factor == 10.0 and f.hold_s == 180.0)),
    RECURRING[1],
)


def test_burst_sized_pool_keeps_the_goal_on_every_seed_of_the_families_it_meets() -> None:
    # docs/autoscaling.md: these families are met on all 8 seeds; x10 for 30 s and 15 min (on
    # cost) and x15 are not, and the doc's "What limits the burst goal" says why in numbers.
    strategy = for_strategy(Strategy.MIN_2_SIZED, SimConfig())
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    for result in evaluate_all(strategy, baseline, SEEDS, MET):
        assert result.seeds == len(SEEDS) >= 8
        assert result.meets_goal(), result


def test_slim_pool_keeps_the_goal_on_every_seed_of_every_family_and_recurring_hour() -> None:
    # docs/autoscaling.md, "Slim standbys": every family and both recurring hours, x12's first
    # burst included, on the tiered price (slim standbys at 25 % of a replica)
    strategy = for_strategy(Strategy.MIN_2_SLIM, SimConfig())
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    results = evaluate_all(strategy, baseline, SEEDS, (*FAMILIES, *RECURRING))
    assert len(results) == len(FAMILIES) + len(RECURRING) == 11
    for result in results:
        assert result.seeds == len(SEEDS) >= 8
        assert result.meets_goal(), result
    # at full price it is not: a standby would cost a whole replica
    assert max(r.worst_cost_ratio for r in results) > 1.3


def test_the_fixed_standby_pays_for_a_standby_the_x5_bursts_never_need() -> None:
    pooled = for_strategy(Strategy.MIN_2_POOL, SimConfig())
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    result = evaluate_family(MET[0], pooled, baseline, SEEDS[:2])
    assert result.worst_miss_ratio == 0.0
    assert result.worst_cost_ratio > 1.4  # one full-price standby on a floor of two


def test_the_process_pool_gives_the_serial_figures() -> None:
    strategy = for_strategy(Strategy.MIN_2_SIZED, SimConfig())
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    families = (FAMILIES[0], FAMILIES[-1])
    serial = evaluate_all(strategy, baseline, (0, 1), families, workers=1)
    assert evaluate_all(strategy, baseline, (0, 1), families, workers=2) == serial
