"""The replay's start model: measured start times become the simulator's cold-start distribution."""

from __future__ import annotations

import math
import random

import pytest

from warmgate.autoscaling.scenario import ReplicaModel, SimConfig
from warmgate.autoscaling.simulator import Simulation
from warmgate.autoscaling.traces import Trace
from warmgate.fleet.replay import start_spread


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
