"""What a simulation runs: the replica model, the policy and pool configs, and the SLA.

The defaults describe one GPU-less replica of a small model behind warmgate: four requests
at once, 0.5 s each, an admission queue of eight, and a cold start of 30 s to provision,
15 s to load and 20 s to warm up. ``cold_start_sigma`` spreads every start (a log-normal
factor with median 1); ``service_curve`` makes service time depend on how many requests a
replica serves together (a batch); :mod:`.calibrate` fills both from a live replica.
:class:`Strategy` names the policies that ``warmgate simulate --compare`` puts side by side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from warmgate.autoscaling.engines import (
    AwsTargetTracking,
    EngineModel,
    KnativeStyle,
    KubernetesHpa,
    describe,
)
from warmgate.autoscaling.model import ScalingConfig, TargetMetric
from warmgate.autoscaling.pool import PoolConfig
from warmgate.errors import ConfigError


@dataclass(frozen=True)
class ReplicaModel:
    concurrency: int = 4
    service_s: float = 0.5
    queue_depth: int = 8
    provision_s: float = 30.0
    load_s: float = 15.0
    warmup_s: float = 20.0
    claim_s: float = 3.0
    drain_s: float = 10.0
    start_failure_rate: float = 0.0
    cold_start_sigma: float = 0.0
    service_curve: tuple[tuple[int, float], ...] = ()
    host_cores: int | None = None  # replicas share this many cores (one machine); None: their own

    def service_at(self, together: int) -> float:
        """Seconds a request of size 1 takes when ``together`` are served at once: the first
        point of ``service_curve`` at or above ``together`` (its last beyond), or ``service_s``."""
        for served, seconds in self.service_curve:
            if served >= together:
                return seconds
        return self.service_curve[-1][1] if self.service_curve else self.service_s

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue_depth < 0:
            raise ConfigError(
                f"concurrency must be >= 1 and queue_depth >= 0, got "
                f"{self.concurrency} and {self.queue_depth}"
            )
        if self.service_s <= 0:
            raise ConfigError(f"service_s must be > 0, got {self.service_s}")
        if self.cold_start_sigma < 0 or any(n < 1 or t <= 0 for n, t in self.service_curve):
            raise ConfigError(
                "cold_start_sigma must be >= 0 and service_curve points (requests >= 1, seconds > 0), "
                f"got {self.cold_start_sigma} and {self.service_curve}"
            )
        if not 0.0 <= self.start_failure_rate <= 1.0:
            raise ConfigError(f"start_failure_rate must be in [0, 1], got {self.start_failure_rate}")

    @property
    def cold_start_s(self) -> float:
        """Provision + load + warmup: how long a new replica takes to answer /ping 200."""
        return self.provision_s + self.load_s + self.warmup_s

    @property
    def throughput(self) -> float:
        """Requests per second one hot replica completes at full load (size 1)."""
        return self.concurrency / self.service_s


# 5 requests/s per hot replica: 62 % of the default replica's 8/s, on the request rate
# (SageMaker's InvocationsPerInstance), which a router backlog cannot inflate.
DEFAULT_SCALING = ScalingConfig(metric=TargetMetric.INVOCATIONS, target_per_replica=5.0)


@dataclass(frozen=True)
class SimConfig:
    """``floor`` is the hot-replica floor reported against (time below it), whatever the
    policy's own ``min_hot``; ``initial_hot`` defaults to ``scaling.min_hot``."""

    scaling: ScalingConfig = field(default_factory=lambda: DEFAULT_SCALING)
    replica: ReplicaModel = field(default_factory=ReplicaModel)
    pool: PoolConfig | None = None
    tick_s: float = 2.0  # the observation interval (the live fleet probes every 0.25 s)
    latency_budget_s: float = 2.0
    router_timeout_s: float = 30.0
    floor: int = 2
    initial_hot: int | None = None
    engine: EngineModel = field(default_factory=KnativeStyle)

    def __post_init__(self) -> None:
        if self.tick_s <= 0 or self.latency_budget_s <= 0 or self.router_timeout_s < 0:
            raise ConfigError(
                "tick_s and latency_budget_s must be > 0 and router_timeout_s >= 0, got "
                f"{self.tick_s}, {self.latency_budget_s}, {self.router_timeout_s}"
            )


class Strategy(Enum):
    SCALE_TO_ZERO = "knative-scale-to-zero"
    MIN_1 = "aws-target-tracking-min-1"
    MIN_2 = "aws-target-tracking-min-2"
    HPA_MIN_2 = "k8s-hpa-min-2"
    MIN_2_POOL = "min-2-warm-pool"


# One standby while the fleet sits on its floor of two; none while it is larger (the
# fleet's own headroom covers a burst then), refilled when it scales back in.
DEFAULT_POOL = PoolConfig(target_size=1, min_size=0, max_size=8, max_prepared=3)


def for_strategy(strategy: Strategy, base: SimConfig, pool: PoolConfig = DEFAULT_POOL) -> SimConfig:
    """``base`` with the engine, floor and pool that ``strategy`` names; the rest unchanged."""
    if strategy is Strategy.MIN_2_POOL:
        scaling = dataclasses.replace(base.scaling, min_hot=2)
        return dataclasses.replace(base, scaling=scaling, pool=pool, engine=KnativeStyle())
    engines: dict[Strategy, tuple[EngineModel, int]] = {
        Strategy.SCALE_TO_ZERO: (KnativeStyle(), 0),
        Strategy.MIN_1: (AwsTargetTracking(), 1),
        Strategy.MIN_2: (AwsTargetTracking(), 2),
        Strategy.HPA_MIN_2: (KubernetesHpa(), 2),
    }
    engine, floor = engines[strategy]
    return dataclasses.replace(base, scaling=_floor(base.scaling, floor), pool=None, engine=engine)


def strategy_parameters(strategy: Strategy, base: SimConfig, pool: PoolConfig = DEFAULT_POOL) -> str:
    """One line naming what ``strategy`` runs with, for the table header."""
    config = for_strategy(strategy, base, pool)
    line = f"{strategy.value}: {type(config.engine).__name__}, {describe(config.engine, config.scaling)}"
    if config.pool is not None:
        p = config.pool
        line += (
            f"; warm pool target {p.target_size} (max prepared {p.max_prepared}), "
            f"claim {base.replica.claim_s:g} s"
        )
    return line


def _floor(scaling: ScalingConfig, min_hot: int) -> ScalingConfig:
    return dataclasses.replace(scaling, min_hot=min_hot)
