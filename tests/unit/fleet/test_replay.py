"""The replay's start model: measured start times become the simulator's cold-start distribution."""

from __future__ import annotations

import math
import random

import pytest

from warmgate.autoscaling.model import ScalingConfig
from warmgate.autoscaling.report import SimReport
from warmgate.autoscaling.scenario import ReplicaModel, SimConfig
from warmgate.autoscaling.simulator import Simulation
from warmgate.autoscaling.traces import Trace
from warmgate.fleet.replay import shrink, start_spread


def test_start_times_give_their_median_and_the_spread_of_their_logs() -> None:
    median, sigma = start_spread([0.5, 1.0, 2.0])
    assert median == 1.0
    assert sigma == pytest.approx(math.log(2.0))  # logs -l, 0, +l: sample stdev l
    assert start_spread([0.4, 0.6]) == (0.5, 0.0)  # too few to tell a spread


def test_the_simulator_draws_cold_starts_around_that_median() -> None:
    median, sigma = start_spread([0.3, 0.45, 0.5, 0.7, 1.1])
    model = ReplicaModel(provision_s=median, load_s=0.0, warmup_s=0.0, cold_start_sigma=sigma)
    sim = Simulation(Trace("empty", 1.0, (), ()), SimConfig(replica=model), random.Random(0))
    draws = sorted(sim.start_time() for _ in range(2001))
    assert draws[1000] == pytest.approx(median, rel=0.1)
    assert draws[0] < 0.5 * median and draws[-1] > 2.0 * median  # spread, not a constant


def test_a_trace_shrunk_for_the_replay_keeps_its_crashes_on_the_same_clock() -> None:
    trace = Trace("storm", 100.0, (1.0, 50.0, 90.0), (1.0, 1.0, 1.0), crashes=(40.0, 41.0, 80.0))
    shrunk = shrink(trace, time_scale=0.5, keep=1.0, duration_s=30.0, seed=0)
    assert shrunk.arrivals == (0.5, 25.0)
    assert shrunk.crashes == (20.0, 20.5)  # 80 s -> 40 s is past the cut
    # a cut past the compressed trace's end ends with it: the fleet and the simulator then
    # count replica-seconds over the same window
    assert shrink(trace, time_scale=0.5, keep=1.0, duration_s=80.0, seed=0).duration_s == 50.0


def test_a_cold_start_is_ready_at_once_but_routed_only_once_the_load_balancer_admits_it() -> None:
    """READY (the policy and the floor count it, as the fleet's probe does) at the end of its
    start; the router sends it requests only ``admit_s`` later (HAProxy's next check)."""

    def run(admit_s: float) -> SimReport:
        model = ReplicaModel(provision_s=1.0, load_s=0.0, warmup_s=0.0, admit_s=admit_s)
        scaling = ScalingConfig(min_hot=1, max_replicas=1)
        config = SimConfig(scaling=scaling, replica=model, initial_hot=0, tick_s=0.05, floor=1)
        return Simulation(Trace("one", 3.0, (1.1,), (1.0,)), config, random.Random(0)).run()

    def first_ready(report: SimReport) -> float:
        return next(p.at for p in report.timeline if p.hot >= 1)

    at_once, admitted = run(0.0), run(0.25)
    assert first_ready(at_once) == pytest.approx(1.05, abs=0.051)  # launched at the first tick
    assert first_ready(admitted) == first_ready(at_once)
    assert (at_once.met_no_ready, admitted.met_no_ready) == (0, 1)  # 1.1 s: READY, not yet routed
    assert at_once.p50_latency_s == pytest.approx(0.5)  # its service time alone
    assert admitted.p50_latency_s == pytest.approx(1.25 - 1.1 + 0.5)  # held until admitted at 1.25
