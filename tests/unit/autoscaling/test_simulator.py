"""The simulator on tiny traces whose figures are worked out by hand in each test."""

from __future__ import annotations

import dataclasses
import random

import pytest

from warmgate.autoscaling.model import ScalingConfig, TargetMetric
from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.report import SimReport
from warmgate.autoscaling.scenario import (
    SERVED_BATCHING_GAIN,
    SERVED_REPLICA,
    ReplicaModel,
    SimConfig,
    SlimStandbys,
    batching_curve,
)
from warmgate.autoscaling.simulator import simulate
from warmgate.autoscaling.traces import Trace, spike


def trace(arrivals: list[float], duration_s: float, crashes: tuple[float, ...] = ()) -> Trace:
    return Trace("tiny", duration_s, tuple(arrivals), (1.0,) * len(arrivals), crashes)


HOUR = 3600.0
COLD = ReplicaModel(
    concurrency=1, queue_depth=1, service_s=1.0, provision_s=4, load_s=3, warmup_s=3, claim_s=2
)


def test_one_replica_queue_refusal_and_lateness() -> None:
    config = SimConfig(
        scaling=ScalingConfig(min_hot=1, max_replicas=1),
        replica=COLD,
        tick_s=10.0,
        latency_budget_s=1.5,
        router_timeout_s=0.5,
        floor=1,
    )
    report = simulate(trace([0.1, 0.2, 0.3, 5.0], 10.0), config, random.Random(0))
    # 0.1: free slot, served 0.1..1.1, latency 1.0
    # 0.2: slot busy, queue has room (1 outstanding < 1 + 1): starts 1.1, ends 2.1, latency
    #      1.9 > 1.5 budget -> slow, but it waited 1.9 - 1.0 = 0.9 s < 1.5 -> not late
    # 0.3: 2 outstanding = concurrency + queue: met no ready replica, held by the router;
    #      at 1.1 it has waited 0.8 s > 0.5 s timeout -> refused
    # 5.0: served 5.0..6.0, latency 1.0
    assert (report.served, report.late, report.slow, report.refused, report.met_no_ready) == (3, 0, 1, 1, 1)
    assert report.sla_misses == 1
    assert report.p50_latency_s == pytest.approx(1.0)
    assert report.p99_latency_s == pytest.approx(1.9)
    # one replica hot for the whole 10 s; nothing warming or pooled; never below floor 1
    assert report.hot_hours == pytest.approx(10 / HOUR)
    assert (report.warming_hours, report.pooled_hours, report.below_floor_s) == (0, 0, 0)


def scale_from_zero(pool: PoolConfig | None) -> SimConfig:
    return SimConfig(
        scaling=ScalingConfig(min_hot=0, metric=TargetMetric.INVOCATIONS, target_per_replica=1),
        replica=COLD,
        pool=pool,
        tick_s=2.0,
        latency_budget_s=2.0,
        router_timeout_s=100.0,
        floor=1,
    )


def test_cold_start_from_zero() -> None:
    report = simulate(trace([1.0], 20.0), scale_from_zero(None), random.Random(0))
    # tick 0: no load, stays at 0. Arrival at 1.0 meets no replica and is held.
    # tick 2: rate 1 arrival / 2 s = 0.5/s -> ceil(0.5 / 1) = 1 replica: a cold start of
    # 4 + 3 + 3 = 10 s, ready at 12; the request runs 12..13: latency 12 s > 2 s budget.
    assert (report.met_no_ready, report.served, report.late) == (1, 1, 1)
    assert report.p50_latency_s == pytest.approx(12.0)
    assert report.cold_starts == 1
    assert report.warming_hours == pytest.approx(10 / HOUR)  # 2..12
    assert report.hot_hours == pytest.approx(8 / HOUR)  # 12..20
    assert report.below_floor_s == pytest.approx(12.0)  # 0..12 with no hot replica


def test_warm_pool_claim_instead_of_cold_start() -> None:
    pool = PoolConfig(target_size=1, max_size=1)
    report = simulate(trace([1.0], 20.0), scale_from_zero(pool), random.Random(0))
    # tick 2 claims the standby (ready since 0): ready after claim_s = 2 s, at 4; the request
    # runs 4..5, latency 4 s. The reaper starts a new standby at 2 (ready at 12).
    assert (report.pool_claims, report.cold_starts) == (1, 0)
    assert report.p50_latency_s == pytest.approx(4.0)
    assert report.warming_hours == pytest.approx(2 / HOUR)  # the claim, 2..4
    assert report.hot_hours == pytest.approx(16 / HOUR)  # 4..20
    assert report.pooled_hours == pytest.approx(20 / HOUR)  # one standby all along


def test_a_crash_loses_its_requests_and_is_replaced() -> None:
    config = SimConfig(
        scaling=ScalingConfig(min_hot=1, max_replicas=2),
        replica=ReplicaModel(concurrency=1, service_s=5.0, provision_s=4, load_s=3, warmup_s=3),
        tick_s=2.0,
        floor=1,
    )
    report = simulate(trace([0.5], 30.0, crashes=(1.0,)), config, random.Random(0))
    # the only replica dies at 1.0 with the 0.5 request in service: crashed 1.
    # tick 2 replaces it: cold start 10 s, ready at 12. Below the floor 1.0..12.0.
    assert (report.crashed, report.served, report.sla_misses) == (1, 0, 1)
    assert report.cold_starts == 1
    assert report.below_floor_s == pytest.approx(11.0)


def test_same_seed_same_report() -> None:
    small = spike(random.Random(3), duration_s=1500.0, at_s=300.0, hold_s=300.0)
    one = simulate(small, SimConfig(pool=PoolConfig(target_size=1)), random.Random(5))
    two = simulate(small, SimConfig(pool=PoolConfig(target_size=1)), random.Random(5))
    assert one == two


def test_failed_starts_are_replaced_each_time() -> None:
    config = SimConfig(
        scaling=ScalingConfig(min_hot=1, max_replicas=3),
        replica=ReplicaModel(provision_s=4, load_s=3, warmup_s=3, start_failure_rate=1.0),
        tick_s=2.0,
        floor=1,
        initial_hot=0,
    )
    report = simulate(trace([], 30.0), config, random.Random(0))
    # tick 0 starts one (fails at 10); tick 10 sees it FAILED and replaces it (fails at 20);
    # tick 20 again (would fail at 30, the end). Ticks 2..8, 12..18, 22..28 see one warming
    # replica and start nothing more: 3 cold starts, 30 s warming, 30 s below the floor.
    assert report.cold_starts == 3
    assert report.warming_hours == pytest.approx(30 / HOUR)
    assert report.hot_hours == 0
    assert report.below_floor_s == pytest.approx(30.0)


def test_a_long_request_is_not_late_for_being_long_only_for_waiting() -> None:
    config = SimConfig(
        scaling=ScalingConfig(min_hot=1, max_replicas=1),
        replica=COLD,
        tick_s=10.0,
        latency_budget_s=2.0,
        router_timeout_s=30.0,
        floor=1,
    )
    # 0.0: size 5 -> served 0..5 s: latency 5 > 2 (slow) but waited 0 s (not late)
    # 0.5: size 1, queued behind it -> starts at 5.0: waited 4.5 s > 2 -> late
    work = Trace("long", 20.0, (0.0, 0.5), (5.0, 1.0))
    report = simulate(work, config, random.Random(0))
    assert (report.served, report.late, report.slow) == (2, 1, 2)
    assert report.sla_miss_ratio == pytest.approx(0.5)
    assert report.latency_miss_ratio == pytest.approx(1.0)


def steady_load(rate: float, duration_s: float) -> Trace:
    count = int(rate * duration_s)
    return trace([i / rate for i in range(count)], duration_s)


def fixed_two(replica: ReplicaModel) -> SimConfig:
    return SimConfig(
        scaling=ScalingConfig(
            min_hot=2, max_replicas=2, metric=TargetMetric.INVOCATIONS, target_per_replica=100
        ),
        replica=replica,
        tick_s=5.0,
        router_timeout_s=1000.0,
    )


def test_a_batching_replica_carries_more_under_a_queue() -> None:
    # 20 requests/s on two replicas: 16/s without batching (4 x 0.5 s each), 22.4/s batching
    # up to 16 together at the measured gain; the flat pair falls behind, the batching one not.
    load = steady_load(20.0, 120.0)
    flat = simulate(load, fixed_two(ReplicaModel()), random.Random(0))
    batching = simulate(load, fixed_two(SERVED_REPLICA), random.Random(0))
    assert SERVED_REPLICA.throughput == pytest.approx(8.0 * SERVED_BATCHING_GAIN)
    assert flat.sla_miss_ratio > 0.2
    assert batching.sla_misses == 0 and batching.met_no_ready == 0


def test_batching_curve_never_dips_below_the_light_rate() -> None:
    curve = batching_curve(4, 0.5, 1.4, 16)
    rates = [n / seconds for n, seconds in curve]
    assert rates[0] == pytest.approx(8.0) and rates[-1] == pytest.approx(11.2)
    assert rates == sorted(rates)


def test_a_hibernated_standby_resumes_faster_than_a_cold_start_and_costs_its_price() -> None:
    # one replica of 1 request/s; a jump to 3/s at t=20 asks for two more
    model = ReplicaModel(concurrency=1, queue_depth=1, service_s=1.0, provision_s=30, load_s=15, warmup_s=20)
    arrivals = [i * 1.0 for i in range(20)] + [20 + i / 3 for i in range(3 * 160)]
    base = SimConfig(
        scaling=ScalingConfig(min_hot=1, metric=TargetMetric.INVOCATIONS, target_per_replica=1.0),
        replica=model,
        tick_s=2.0,
        router_timeout_s=500.0,
        floor=1,
    )
    cold = simulate(trace(arrivals, 180.0), base, random.Random(0))
    tiered = dataclasses.replace(base, hibernated=2, hibernated_price=0.1)
    warm = simulate(trace(arrivals, 180.0), tiered, random.Random(0))
    assert warm.resumes == 2 and cold.resumes == 0

    def second_hot_at(report: SimReport) -> float:
        return next(p.at for p in report.timeline if p.hot >= 2)

    # the scale-out is decided at t=22 or so: READY 45 s later from hibernation, 65 s cold
    assert 65.0 <= second_hot_at(warm) <= 71.0
    assert 85.0 <= second_hot_at(cold) <= 91.0
    assert warm.p99_latency_s is not None and cold.p99_latency_s is not None
    assert warm.p99_latency_s < cold.p99_latency_s
    assert warm.hibernated_hours > 0
    full = warm.hot_hours + warm.warming_hours + warm.pooled_hours + warm.hibernated_hours
    assert warm.replica_hours == pytest.approx(full)  # full price: a sleeping one is a replica
    assert warm.priced_hours == pytest.approx(full - 0.9 * warm.hibernated_hours)


def test_a_slim_standby_is_claimed_once_resized_and_costs_its_price_while_it_waits() -> None:
    # As the claim above, with the standby slim: its resize (5 s) outlasts the claim (2 s)
    pool = PoolConfig(target_size=1, max_size=1)
    config = dataclasses.replace(scale_from_zero(pool), slim=SlimStandbys(price=0.25, resize_s=5.0))
    report = simulate(trace([1.0], 20.0), config, random.Random(0))
    # tick 2 claims the standby, READY at 2 + 5 = 7; the request runs 7..8. Its replacement
    # (launched at 2) starts at full price until READY at 12, then waits slim.
    assert (report.pool_claims, report.cold_starts) == (1, 0)
    assert report.p50_latency_s == pytest.approx(7.0)
    assert report.pooled_hours == pytest.approx(20 / HOUR)
    assert report.slim_hours == pytest.approx((2 + 8) / HOUR)  # READY in the pool: 0..2, 12..20
    assert report.priced_hours == pytest.approx(report.replica_hours - 0.75 * 10 / HOUR)
