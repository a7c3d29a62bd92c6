"""The replica model from a replica's own /metrics, and what the simulator does with it."""

from __future__ import annotations

import random

import pytest

from warmgate.autoscaling.calibrate import replica_from_metrics
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
