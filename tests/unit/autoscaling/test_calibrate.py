"""The replica model from a replica's own /metrics, and what the simulator does with it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
from pathlib import Path

import pytest

from warmgate.autoscaling.calibrate import (
    Z99,
    ServiceFit,
    ShiftedLogNormal,
    concurrency_at_send,
    fit_service,
    fit_shifted_lognormal,
    replica_from_metrics,
)
from warmgate.autoscaling.cli import add_commands, sim_config
from warmgate.autoscaling.model import ScalingConfig
from warmgate.autoscaling.scenario import ReplicaModel, SimConfig
from warmgate.autoscaling.simulator import simulate
from warmgate.autoscaling.traces import Trace
from warmgate.errors import ConfigError

METRICS = """\
# HELP warmgate_model_load_seconds time spent loading the model
# TYPE warmgate_model_load_seconds gauge
warmgate_model_load_seconds 1.25
# HELP warmgate_warmup_seconds warmup time per shape
# TYPE warmgate_warmup_seconds gauge
warmgate_warmup_seconds{shape="batch-1-short"} 0.5
warmgate_warmup_seconds{shape="batch-8-catalog"} 1.5
warmgate_warmup_seconds{shape="long-text"} 2.0
# HELP warmgate_warmup_steady_latency_seconds converged latency per shape
# TYPE warmgate_warmup_steady_latency_seconds gauge
warmgate_warmup_steady_latency_seconds{shape="batch-1-short"} 0.004
warmgate_warmup_steady_latency_seconds{shape="batch-8-catalog"} 0.012
warmgate_warmup_steady_latency_seconds{shape="long-text"} 0.030
"""


def test_load_warmup_and_service_curve_come_from_the_replicas_metrics() -> None:
    model = replica_from_metrics(METRICS, ReplicaModel(provision_s=40.0))
    assert model.load_s == pytest.approx(1.25)
    assert model.warmup_s == pytest.approx(4.0)  # every shape's warmup, summed
    assert model.service_curve == ((1, 0.004), (8, 0.012))
    assert (model.service_s, model.concurrency) == (0.004, 8)
    assert model.provision_s == 40.0  # not the replica's to know
    assert model.service_at(1) == 0.004 and model.service_at(5) == 0.012 and model.service_at(30) == 0.012


def test_metrics_without_a_load_time_are_refused_with_what_to_pass() -> None:
    with pytest.raises(ConfigError, match="READY warmgate replica"):
        replica_from_metrics("warmgate_queue_depth 0\n", ReplicaModel())


def test_service_time_follows_how_many_are_served_together() -> None:
    # 8 requests arrive at once on one replica that serves up to 8 together.
    burst = Trace("burst", 10.0, (0.0,) * 8, (1.0,) * 8)
    flat = ReplicaModel(concurrency=8, service_s=1.0)
    batched = ReplicaModel(concurrency=8, service_s=1.0, service_curve=((1, 1.0), (4, 1.5), (8, 2.0)))
    one = ScalingConfig(min_hot=1, max_replicas=1)
    same = simulate(burst, SimConfig(scaling=one, replica=flat, floor=1), random.Random(0))
    grows = simulate(burst, SimConfig(scaling=one, replica=batched, floor=1), random.Random(0))
    assert same.p50_latency_s == pytest.approx(1.0)
    # the 1st starts alone (1.0 s), the 2nd-4th with up to 4 (1.5 s), the 5th-8th with up to 8 (2.0 s)
    assert grows.p50_latency_s == pytest.approx(2.0)
    assert grows.p99_latency_s == pytest.approx(2.0)


def test_cold_starts_spread_when_sigma_is_set() -> None:
    quiet = Trace("quiet", 300.0, (), ())
    config = SimConfig(scaling=ScalingConfig(min_hot=1, max_replicas=1), floor=1, initial_hot=0)
    fixed = simulate(quiet, config, random.Random(1))
    spread = [
        simulate(
            quiet,
            SimConfig(**{**config.__dict__, "replica": ReplicaModel(cold_start_sigma=0.5)}),
            random.Random(s),
        ).below_floor_s
        for s in range(4)
    ]
    assert fixed.below_floor_s == pytest.approx(ReplicaModel().cold_start_s, abs=0.6)
    assert len({round(x, 3) for x in spread}) == 4  # a distribution, not a constant


def test_replicas_sharing_a_hosts_cores_slow_each_other_down() -> None:
    # 4 requests at once on two replicas (2 each); each alone takes 1 s.
    four = Trace("four", 10.0, (0.0, 0.0, 0.0, 0.0), (1.0,) * 4)
    two = ScalingConfig(min_hot=2, max_replicas=2)
    own = simulate(
        four, SimConfig(scaling=two, replica=ReplicaModel(concurrency=2, service_s=1.0)), random.Random(0)
    )
    shared = ReplicaModel(concurrency=2, service_s=1.0, host_cores=2)
    one_host = simulate(four, SimConfig(scaling=two, replica=shared), random.Random(0))
    assert own.p99_latency_s == pytest.approx(1.0)
    # the 3rd and 4th start with 3 and 4 in service on 2 cores: 1.0 x 3/2 and 1.0 x 4/2
    assert one_host.p99_latency_s == pytest.approx(2.0)


# --- the service-time fit of a calibration sweep (latencies seen through the load balancer) ---


def shifted_lognormal(shift: float, median: float, sigma: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [shift + median * rng.lognormvariate(0.0, sigma) for _ in range(count)]


@pytest.mark.parametrize(
    ("shift", "median", "sigma"), [(0.005, 0.002, 0.8), (0.004, 0.003, 0.4), (0.0, 0.01, 0.5)]
)
def test_fit_recovers_a_shifted_lognormals_parameters(shift: float, median: float, sigma: float) -> None:
    fit = fit_shifted_lognormal(shifted_lognormal(shift, median, sigma, 50_000, seed=1))
    assert fit.shift_s == pytest.approx(shift, abs=0.05 * (shift + median))
    assert fit.median_s == pytest.approx(median, rel=0.1)
    assert fit.sigma == pytest.approx(sigma, rel=0.1)
    assert fit.quantile(0.99) == pytest.approx(shift + median * math.exp(sigma * Z99), rel=0.05)


def test_a_tail_too_light_for_a_floor_gets_none() -> None:
    uniform = [0.010 + 0.001 * i / 1000 for i in range(1000)]  # symmetric: no right skew to place a floor by
    fit = fit_shifted_lognormal(uniform)
    assert fit.shift_s == 0.0
    assert fit.median_s == pytest.approx(0.0105, rel=0.01)
    assert fit.quantile(0.99) == pytest.approx(0.01099, rel=0.01)  # the measured p99 still holds


def test_too_few_latencies_to_fit_a_tail_are_refused_with_what_to_do() -> None:
    with pytest.raises(ConfigError, match="sweep longer"):
        fit_shifted_lognormal([0.01] * 20)


def test_concurrency_at_send_counts_the_requests_still_outstanding() -> None:
    # [0, 1), [0.5, 2), [1, 1.5), [3, 4): the 2nd meets the 1st; the 3rd meets the 2nd (the 1st just ended)
    rows = [(0.0, 1.0), (0.5, 1.5), (1.0, 0.5), (3.0, 1.0)]
    assert concurrency_at_send(rows) == [1, 2, 2, 1]


def test_fit_service_recovers_overhead_growth_and_spread() -> None:
    overhead, lone, per_request, sigma = 0.004, 0.002, 0.0005, 0.6
    rng = random.Random(7)
    samples = [
        (n, overhead + (lone + per_request * (n - 1)) * rng.lognormvariate(0.0, sigma))
        for n, count in ((1, 20_000), (2, 5_000), (3, 2_000), (4, 500))
        for _ in range(count)
    ]
    fit = fit_service(samples)
    assert fit.overhead_s == pytest.approx(overhead, abs=0.0003)
    assert fit.lone_s == pytest.approx(lone, rel=0.1)
    assert fit.per_request_s == pytest.approx(per_request, rel=0.15)
    assert fit.sigma == pytest.approx(sigma, rel=0.1)
    assert fit.median_lone_s == pytest.approx(overhead + lone, rel=0.05)


def test_a_replica_never_gets_faster_with_more_to_do() -> None:
    rng = random.Random(3)
    lone = [(1, 0.004 + 0.002 * rng.lognormvariate(0.0, 0.5)) for _ in range(2_000)]
    crowded = [(3, 0.004 + 0.001 * rng.lognormvariate(0.0, 0.5)) for _ in range(2_000)]
    assert fit_service(lone + crowded).per_request_s == 0.0


def test_the_simulator_draws_service_times_from_the_fitted_model() -> None:
    # lone requests 1 s apart on one replica: latency = service, so its quantiles are the fit's
    fit = ServiceFit(overhead_s=0.004, lone_s=0.002, per_request_s=0.001, sigma=0.7, samples=0)
    model = fit.replica(ReplicaModel(), concurrency=8)
    assert [n for n, _ in model.service_curve] == list(range(1, 9))
    assert [t for _, t in model.service_curve[:3]] == pytest.approx([0.002, 0.003, 0.004])
    sparse = Trace("sparse", 4000.0, tuple(float(i) for i in range(4000)), (1.0,) * 4000)
    one = SimConfig(scaling=ScalingConfig(min_hot=1, max_replicas=1), replica=model, floor=1)
    report = simulate(sparse, one, random.Random(0))
    expected = ShiftedLogNormal(0.004, 0.002, 0.7)
    assert report.p50_latency_s == pytest.approx(expected.quantile(0.5), rel=0.05)
    assert report.p99_latency_s == pytest.approx(expected.quantile(0.99), rel=0.15)


def test_requests_served_together_take_the_curves_longer_time() -> None:
    # 3 at once on a replica serving up to 8 together: 0.004 fixed + 0.002, 0.003, 0.004 (no spread)
    fit = ServiceFit(overhead_s=0.004, lone_s=0.002, per_request_s=0.001, sigma=0.0, samples=0)
    three = Trace("three", 1.0, (0.0, 0.0, 0.0), (1.0,) * 3)
    one = SimConfig(
        scaling=ScalingConfig(min_hot=1, max_replicas=1), replica=fit.replica(ReplicaModel(), 8), floor=1
    )
    report = simulate(three, one, random.Random(0))
    assert report.p50_latency_s == pytest.approx(0.007)
    assert report.p99_latency_s == pytest.approx(0.008)


def test_warmgate_simulate_fits_its_replica_to_a_sweeps_rows(tmp_path: Path) -> None:
    # lone requests 1 s apart (one outstanding each), plus refused ones that the fit must skip
    latencies = shifted_lognormal(0.005, 0.002, 0.5, 2_000, seed=4)
    rows = [[float(i), latency, 200] for i, latency in enumerate(latencies)]
    rows += [[i + 0.5, 0.0001, 503] for i in range(500)]
    sweep = tmp_path / "rows.json"
    sweep.write_text(json.dumps(rows))
    parser = argparse.ArgumentParser(prog="warmgate")
    add_commands(parser.add_subparsers(dest="command", required=True))
    replica = sim_config(
        parser.parse_args(["simulate", "--service-sweep", str(sweep), "--max-batch", "4"])
    ).replica
    assert replica.overhead_s == pytest.approx(0.005, abs=0.0005)
    assert replica.service_at(1) == pytest.approx(0.002, rel=0.15)
    assert replica.service_sigma == pytest.approx(0.5, rel=0.15)


def test_requests_met_by_a_start_on_the_shared_host_draw_from_its_measured_times() -> None:
    # One replica serving lone requests 1 s apart; the policy (floor 2) cold-starts a second on
    # the same host at once, READY 10 s later. Requests in those 10 s take the start's 0.5 s;
    # the rest the replica's own 0.01 s.
    model = ReplicaModel(
        concurrency=1,
        service_s=0.01,
        provision_s=10.0,
        load_s=0.0,
        warmup_s=0.0,
        host_cores=2,
        starting_median_s=0.5,
    )
    sparse = Trace("sparse", 40.0, tuple(float(i) + 0.5 for i in range(40)), (1.0,) * 40)
    config = SimConfig(scaling=ScalingConfig(min_hot=2, max_replicas=2), replica=model, initial_hot=1)
    report = simulate(sparse, config, random.Random(0))
    assert report.cold_starts == 1
    assert report.p50_latency_s == pytest.approx(0.01)
    assert report.p99_latency_s == pytest.approx(0.5)
    alone = dataclasses.replace(model, host_cores=None)  # its own machine: a start costs nothing
    assert simulate(sparse, dataclasses.replace(config, replica=alone), random.Random(0)).p99_latency_s == (
        pytest.approx(0.01)
    )
