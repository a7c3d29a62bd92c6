"""What a simulation runs: the replica model, the policy and pool configs, and the SLA.

``ReplicaModel()`` is a flat replica of a small model: four requests at once, 0.5 s each,
an admission queue of eight, and a cold start of 30 s to provision, 15 s to load and 20 s
to warm up. ``SERVED_REPLICA`` (the simulator's default) is the same replica batching up to
16 requests under a queue at the served batching gain measured by
``scripts/bench_ab.py`` (batching on against ``--max-batch 1``). ``cold_start_sigma`` spreads every start (a
log-normal factor with median 1); ``service_curve`` makes service time depend on how many
requests a replica serves together (a batch), ``overhead_s`` adds a fixed time to every
request and ``service_sigma`` spreads the rest log-normally; :mod:`.calibrate` fills them from
a live replica's metrics and from a sweep of requests through the load balancer.
``SimConfig.hibernated`` adds a tier of hibernated standbys at their own price.
:class:`Strategy` names the policies that ``warmgate simulate --compare`` puts side by side.
"""

from __future__ import annotations

import dataclasses
import random
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
from warmgate.autoscaling.sizing import BurstSizing
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
    # READY -> routed for a started (not claimed) replica: the load balancer's health check
    # admitting it. 0: at once (the default replica's cold start already rounds it in).
    admit_s: float = 0.0
    drain_s: float = 10.0
    start_failure_rate: float = 0.0
    cold_start_sigma: float = 0.0
    service_curve: tuple[tuple[int, float], ...] = ()
    host_cores: int | None = None  # replicas share this many cores (one machine); None: their own
    # Measured through the load balancer (calibrate.fit_service): every request pays a fixed
    # overhead_s (HTTP, HAProxy, event loops) plus the curve's time x a log-normal factor of
    # median 1 and spread service_sigma. 0 and 0: the curve's time alone, as a constant.
    overhead_s: float = 0.0
    service_sigma: float = 0.0
    # While a replica or standby starts on the same host (host_cores set), a request's service
    # time is starting_overhead_s + starting_median_s x size x LogNormal(0, starting_sigma)
    # instead: a start takes cores from the replicas serving. Measured by the calibration
    # sweep's spare start; starting_median_s 0: no such effect.
    starting_overhead_s: float = 0.0
    starting_median_s: float = 0.0
    starting_sigma: float = 0.0
    # A hibernated standby: instance start + RAM restore -> READY (its process kept its RAM).
    # 4 GiB of RAM read back from a gp3 volume at its 125 MiB/s baseline is 33 s, plus a boot.
    resume_s: float = 45.0

    def service_at(self, together: int) -> float:
        """Seconds a request of size 1 takes when ``together`` are served at once: the first
        point of ``service_curve`` at or above ``together`` (its last beyond), or ``service_s``."""
        for served, seconds in self.service_curve:
            if served >= together:
                return seconds
        return self.service_curve[-1][1] if self.service_curve else self.service_s

    def draw_service(self, together: int, size: float, rng: random.Random, starting: bool = False) -> float:
        """One request's service time: ``overhead_s`` plus ``service_at(together)`` x ``size``,
        the latter spread log-normally (median unchanged) when ``service_sigma`` > 0. Draws
        from ``rng`` only then, so a model without spread leaves the random stream untouched.
        ``starting``: a replica is starting on this host, and the model has a measured
        ``starting_*`` distribution for that: draw from it."""
        if starting and self.starting_median_s > 0:
            spread = rng.lognormvariate(0.0, self.starting_sigma) if self.starting_sigma > 0 else 1.0
            return self.starting_overhead_s + self.starting_median_s * size * spread
        spread = rng.lognormvariate(0.0, self.service_sigma) if self.service_sigma > 0 else 1.0
        return self.overhead_s + self.service_at(together) * size * spread

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue_depth < 0:
            raise ConfigError(
                f"concurrency must be >= 1 and queue_depth >= 0, got "
                f"{self.concurrency} and {self.queue_depth}"
            )
        if self.service_s <= 0:
            raise ConfigError(f"service_s must be > 0, got {self.service_s}")
        spreads = (self.overhead_s, self.service_sigma, self.starting_overhead_s, self.starting_median_s)
        if min(*spreads, self.starting_sigma) < 0:
            raise ConfigError(
                "overhead_s, service_sigma and the starting_* times must be >= 0, got "
                f"{self.overhead_s}, {self.service_sigma}, {self.starting_overhead_s}, "
                f"{self.starting_median_s}, {self.starting_sigma}"
            )
        if self.admit_s < 0 or self.claim_s < 0:
            raise ConfigError(f"admit_s and claim_s must be >= 0, got {self.admit_s} and {self.claim_s}")
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
        """Requests per second one hot replica completes at full load (size 1, median times):
        its best point of the service curve, or ``concurrency / service_s`` without one,
        with ``overhead_s`` added to every request's time."""
        if not self.service_curve:
            return self.concurrency / (self.overhead_s + self.service_s)
        return max(n / (self.overhead_s + t) for n, t in self.service_curve if n <= self.concurrency)


def batching_curve(
    light: int, service_s: float, gain: float, max_batch: int
) -> tuple[tuple[int, float], ...]:
    """A service curve for a replica that serves ``light`` requests at once in ``service_s``
    each and, batching up to ``max_batch`` together, completes ``gain`` x as many per second.

    One point per batch size from ``light`` to ``max_batch``; the seconds grow linearly
    between the two ends, so throughput rises smoothly and never dips below the light rate.
    """
    if light < 1 or max_batch < light or gain < 1.0 or service_s <= 0:
        raise ConfigError(
            f"need 1 <= light <= max_batch, gain >= 1 and service_s > 0, got "
            f"{light}, {max_batch}, {gain}, {service_s}"
        )
    top_s = max_batch * service_s / (light * gain)
    span = max(1, max_batch - light)
    return tuple(
        (n, service_s + (top_s - service_s) * (n - light) / span) for n in range(light, max_batch + 1)
    )


# Served throughput with dynamic batching over one request a batch, each at its best of 8 and
# 32 clients: 684 / 441 requests/s, medians of 3 interleaved rounds of
# `python scripts/bench_ab.py --a="--max-batch 1" --b="" --rounds 3 --seconds 5 --clients N`
# for N = 32 and 8 (2026-11-26, 2 cores; docs/benchmarks.md "Batching gain"). At saturation the
# batcher formed batches of 9-16 rows, hence a curve up to 16.
SERVED_BATCHING_GAIN = 684.0 / 441.0
SERVED_MAX_BATCH = 16

# The simulator's default replica: four requests at once of 0.5 s each at light load (8/s),
# and, batching up to 16 together under a queue, SERVED_BATCHING_GAIN x that (12.4/s).
SERVED_REPLICA = ReplicaModel(
    concurrency=SERVED_MAX_BATCH,
    service_curve=batching_curve(4, 0.5, SERVED_BATCHING_GAIN, SERVED_MAX_BATCH),
)

# The share of a replica's throughput a hot replica is asked to carry: 5 of the flat
# replica's 8 requests/s.
TARGET_SHARE = 5.0 / 8.0
# 5 requests/s per hot replica: TARGET_SHARE of the default replica's 8/s, on the request rate
# (SageMaker's InvocationsPerInstance), which a router backlog cannot inflate.
DEFAULT_SCALING = ScalingConfig(metric=TargetMetric.INVOCATIONS, target_per_replica=5.0)
# The simulator's: the same share of the batching replica's throughput (7.8 of 12.4/s).
SIM_SCALING = dataclasses.replace(
    DEFAULT_SCALING, target_per_replica=round(TARGET_SHARE * SERVED_REPLICA.throughput, 1)
)


# What a hibernated EC2 instance costs against a running one. AWS bills a stopped or
# hibernated instance only for its EBS volumes (and Elastic IPs): "you pay only for the volumes
# that you use" (EC2 Auto Scaling user guide, warm pool instance states). Example, us-east-1
# on-demand: c6i.large $0.085/h; a 30 GiB gp3 root volume holding the model and the saved
# RAM, $0.08 per GiB-month = $0.0033/h, 3.9 %. 10 % leaves room for a bigger volume.
HIBERNATED_PRICE = 0.10

# What a slim standby costs against a running replica: a READY standby resized in place down
# to a quarter of a core (Kubernetes in-place pod resize, GA in 1.35; the local fleet's CPU
# quota), its memory kept, priced by its requests as GKE Autopilot bills pods (CPU in steps of
# a quarter vCPU, 1 to 6.5 GiB of memory per vCPU; general-purpose, us-central1: about $0.0445
# per vCPU-hour and $0.0049 per GiB-hour). A replica of 2 vCPU and 2 GiB is $0.099/h; a
# standby of 0.25 vCPU and 1 GiB (the most a quarter vCPU may hold is 1.625 GiB; the served
# replica's RSS is about 200 MiB) $0.016/h, 16 %. 25 % leaves room for dearer memory.
SLIM_PRICE = 0.25


@dataclass(frozen=True)
class SlimStandbys:
    """READY warm-pool standbys resized down to a sliver of CPU while they wait (the model in
    memory, warm), priced at ``price`` of a replica, and resized back up when claimed, while the
    load balancer learns of it: READY ``max(resize_s, claim_s)`` after the claim. A standby
    starts (loads, warms) at full size."""

    price: float = SLIM_PRICE
    resize_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.price <= 1.0 or self.resize_s < 0:
            raise ConfigError(
                f"slim price must be in [0, 1] and resize_s >= 0, got {self.price} and {self.resize_s}"
            )


@dataclass(frozen=True)
class SimConfig:
    """``floor`` is the hot-replica floor reported against (time below it), whatever the
    policy's own ``min_hot``; ``initial_hot`` defaults to ``scaling.min_hot``."""

    scaling: ScalingConfig = field(default_factory=lambda: SIM_SCALING)
    replica: ReplicaModel = field(default_factory=lambda: SERVED_REPLICA)
    pool: PoolConfig | None = None
    tick_s: float = 2.0  # the observation interval (the live fleet probes every 0.25 s)
    latency_budget_s: float = 2.0
    router_timeout_s: float = 30.0
    floor: int = 2
    initial_hot: int | None = None
    engine: EngineModel = field(default_factory=KnativeStyle)
    hibernated: int = 0  # size of the hibernated standby tier (an EC2 warm pool, Hibernated)
    hibernated_price: float = HIBERNATED_PRICE
    slim: SlimStandbys | None = None  # READY standbys resized down while they wait

    def __post_init__(self) -> None:
        if self.hibernated < 0 or not 0.0 <= self.hibernated_price <= 1.0:
            raise ConfigError(
                f"hibernated must be >= 0 and hibernated_price in [0, 1], got "
                f"{self.hibernated} and {self.hibernated_price}"
            )
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
    MIN_2_SIZED = "min-2-burst-sized"
    MIN_2_SLIM = "min-2-slim-pool"


# One standby while the fleet sits on its floor of two; none while it is larger (the
# fleet's own headroom covers a burst then), refilled when it scales back in.
DEFAULT_POOL = PoolConfig(target_size=1, min_size=0, max_size=8, max_prepared=3)


# The share of a replica's throughput the slim strategy's hot replicas are asked to carry: 85 %,
# where every other strategy aims at TARGET_SHARE (63 %). Its READY standby is its headroom: a
# claim serves in claim_s (3 s), observed every SLIM_TICK_S, where the others' headroom must
# ride out a 65 s cold start. (AWS target tracking at 85 % misses 43-83 % of x15 bursts:
# docs/autoscaling.md, "Slim standbys".)
SLIM_TARGET_SHARE = 0.85
# How often the slim strategy's controller observes: its own loop (the local fleet's ticks every
# 0.25 s), not an engine's metric period. At 2 s the claim of a standby waits up to 2 s for the
# next tick, and the first seconds of a x15 burst miss (docs/autoscaling.md, "Slim standbys").
SLIM_TICK_S = 0.5
# The slim strategy's scale-in window: a replica scaled in waits as a slim standby, claimed back
# in claim_s (3 s), so the window that keeps a fleet from shedding what a cold start (65 s)
# would have to bring back can be short.
SLIM_SCALE_IN_WINDOW_S = 30.0


# The burst-sized strategy's pool: no standby of its own; the policy names how many to keep.
SIZED_POOL = PoolConfig(target_size=0, min_size=0, max_size=8)


def burst_sizing(replica: ReplicaModel, design_jump: float = 1.0) -> BurstSizing:
    """Standby sizing for ``replica``: its best throughput, over a claim + cold start."""
    return BurstSizing(
        replica_capacity=replica.throughput,
        horizon_s=replica.claim_s + replica.cold_start_s,
        design_jump=design_jump,
    )


def for_strategy(strategy: Strategy, base: SimConfig, pool: PoolConfig = DEFAULT_POOL) -> SimConfig:
    """``base`` with the engine, floor and pool that ``strategy`` names; the rest unchanged.
    The burst-sized strategy keeps ``base.scaling.burst`` when set (a design jump, say) and
    ``base.hibernated``; the slim pool keeps ``base.slim`` (its price, its resize time) when set.
    No other strategy has either tier."""
    if strategy is Strategy.MIN_2_SLIM:
        scaling = dataclasses.replace(
            base.scaling,
            min_hot=2,
            burst=None,
            scale_in_window_s=SLIM_SCALE_IN_WINDOW_S,
            target_per_replica=round(base.scaling.target_per_replica * SLIM_TARGET_SHARE / TARGET_SHARE, 1),
        )
        reusing = dataclasses.replace(pool, reuse_on_scale_in=True)
        slim = base.slim or SlimStandbys()
        return dataclasses.replace(
            base,
            scaling=scaling,
            pool=reusing,
            engine=KnativeStyle(),
            slim=slim,
            hibernated=0,
            tick_s=min(base.tick_s, SLIM_TICK_S),
        )
    base = dataclasses.replace(base, slim=None)
    if strategy is Strategy.MIN_2_SIZED:
        sizing = base.scaling.burst or burst_sizing(base.replica)
        scaling = dataclasses.replace(base.scaling, min_hot=2, burst=sizing)
        return dataclasses.replace(base, scaling=scaling, pool=SIZED_POOL, engine=KnativeStyle())
    base = dataclasses.replace(base, hibernated=0)
    if strategy is Strategy.MIN_2_POOL:
        scaling = dataclasses.replace(base.scaling, min_hot=2, burst=None)
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
    sizing = config.scaling.burst
    if sizing is not None:
        line += (
            f"; standbys for the {100 * sizing.quantile:g}th percentile of rate jumps over "
            f"{sizing.horizon_s:g} s (claim + cold start), design jump x{sizing.design_jump:g}, "
            f"{sizing.replica_capacity:.1f} requests/s per replica at {100 * sizing.utilisation:g} %"
        )
        if config.hibernated:
            line += (
                f"; hibernated tier of {config.hibernated} (resume {config.replica.resume_s:g} s, "
                f"{100 * config.hibernated_price:g} % of a replica's price)"
            )
    elif config.pool is not None:
        p = config.pool
        line += (
            f"; warm pool target {p.target_size} (max prepared {p.max_prepared}), "
            f"claim {base.replica.claim_s:g} s"
        )
        if p.reuse_on_scale_in:
            line += ", reuse on scale-in"
        if config.slim is not None:
            line += (
                f"; slim standbys at {100 * config.slim.price:g} % of a replica's price, "
                f"resized up in {config.slim.resize_s:g} s; observes every {config.tick_s:g} s"
            )
    return line


def _floor(scaling: ScalingConfig, min_hot: int) -> ScalingConfig:
    return dataclasses.replace(scaling, min_hot=min_hot, burst=None)
