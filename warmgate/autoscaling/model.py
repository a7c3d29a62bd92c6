"""The policy's vocabulary: what it observes, how it is configured, what it decides.

Everything here is a frozen dataclass or an enum, so a decision is a pure function of
its inputs (see :mod:`warmgate.autoscaling.policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from warmgate.autoscaling.sizing import BurstSizing, JumpState
from warmgate.errors import ConfigError


class ReplicaPhase(Enum):
    """A replica's phase as the fleet sees it (the server's own lifecycle, coarsened)."""

    WARMING = "warming"  # provisioning, loading weights or running warmup: /ping says 503
    READY = "ready"  # /ping says 200: hot, takes traffic
    DRAINING = "draining"  # leaving: finishes in-flight work, takes nothing new
    FAILED = "failed"  # load or warmup failed, or the process died


class TargetMetric(Enum):
    """What the target per replica is measured in."""

    IN_FLIGHT = "in_flight"  # concurrent requests per hot replica (Ray Serve, Knative)
    INVOCATIONS = "invocations"  # requests per second per hot replica (SageMaker, per minute)


class ScalingMode(Enum):
    """STABLE follows averaged load; PANIC (burst) reacts to a short window and never scales in."""

    STABLE = "stable"
    PANIC = "panic"


@dataclass(frozen=True)
class ReplicaView:
    """One replica in an observation."""

    replica_id: str
    phase: ReplicaPhase
    in_flight: int = 0


@dataclass(frozen=True)
class Observation:
    """What the data-gathering side saw at one instant.

    ``queued`` counts requests held in front of the fleet (a router or activator buffer)
    because no hot replica had room; they are demand just as in-flight requests are.
    ``waiting`` counts requests hot replicas admitted but have not started (the server's
    ``warmgate_queue_depth``): a replica's own backlog, the first sign of a burst.
    """

    replicas: tuple[ReplicaView, ...]
    request_rate: float = 0.0
    queued: int = 0
    waiting: int = 0
    latency_p99_s: float | None = None

    def count(self, phase: ReplicaPhase) -> int:
        return sum(1 for r in self.replicas if r.phase is phase)

    def ids(self, phase: ReplicaPhase) -> tuple[str, ...]:
        return tuple(r.replica_id for r in self.replicas if r.phase is phase)

    @property
    def hot(self) -> int:
        """READY replicas only: warming capacity is never hot."""
        return self.count(ReplicaPhase.READY)

    @property
    def demand_in_flight(self) -> int:
        """In-flight work on hot replicas plus requests waiting for one."""
        ready = (r.in_flight for r in self.replicas if r.phase is ReplicaPhase.READY)
        return sum(ready) + self.queued


@dataclass(frozen=True)
class ScalingConfig:
    """Knobs of :func:`warmgate.autoscaling.policy.decide`.

    ``metric_window_s`` averages the metric for the stable recommendation; ``panic_window_s``
    averages it for the burst one, and PANIC starts when that asks for ``panic_threshold``
    times the hot replicas. Scale-out follows the lowest recommendation of the last
    ``scale_out_window_s``; scale-in the highest of the last ``scale_in_window_s``, and
    only once that long has passed since the last change.

    ``fast_path_backlog`` > 0 turns on the fast path: when the backlog (``waiting`` +
    ``queued``) has reached it and grew since the previous observation, the policy panics
    at once, without waiting for the panic window's average, and asks for the replicas the
    latest sample alone needs (at least one more than are hot).

    ``burst`` turns on standby sizing from the observed rate jumps (:mod:`.sizing`): each
    decision then names how many warm standbys to keep (``Decision.standbys``).
    """

    min_hot: int = 2
    max_replicas: int = 20
    metric: TargetMetric = TargetMetric.IN_FLIGHT
    target_per_replica: float = 3.0
    metric_window_s: float = 30.0
    panic_window_s: float = 6.0
    panic_threshold: float = 1.5
    scale_out_window_s: float = 0.0
    scale_in_window_s: float = 180.0
    fast_path_backlog: int = 0
    burst: BurstSizing | None = None

    def __post_init__(self) -> None:
        if self.min_hot < 0:
            raise ConfigError(f"min_hot must be >= 0, got {self.min_hot}")
        if self.max_replicas < max(self.min_hot, 1):
            raise ConfigError(
                f"max_replicas ({self.max_replicas}) must be >= max(min_hot, 1) "
                f"(min_hot={self.min_hot}); raise max_replicas or lower min_hot"
            )
        if self.target_per_replica <= 0:
            raise ConfigError(f"target_per_replica must be > 0, got {self.target_per_replica}")
        if self.fast_path_backlog < 0:
            raise ConfigError(f"fast_path_backlog must be >= 0 (0: off), got {self.fast_path_backlog}")
        if self.panic_threshold < 1.0:
            raise ConfigError(f"panic_threshold must be >= 1.0, got {self.panic_threshold}")
        _check_non_negative(
            ("metric_window_s", self.metric_window_s),
            ("panic_window_s", self.panic_window_s),
            ("scale_out_window_s", self.scale_out_window_s),
            ("scale_in_window_s", self.scale_in_window_s),
        )


def _check_non_negative(*pairs: tuple[str, float]) -> None:
    for name, value in pairs:
        if value < 0:
            raise ConfigError(f"{name} must be >= 0 seconds, got {value}")


@dataclass(frozen=True)
class Sample:
    """A metric value (total over the fleet) at a time."""

    at: float
    value: float


@dataclass(frozen=True)
class Recommendation:
    """A desired replica count computed at a time (before floor/cap and stabilisation)."""

    at: float
    replicas: int


@dataclass(frozen=True)
class PolicyState:
    """Everything ``decide`` remembers between calls. Start with ``PolicyState()``."""

    samples: tuple[Sample, ...] = ()
    recommendations: tuple[Recommendation, ...] = ()
    mode: ScalingMode = ScalingMode.STABLE
    panic_since: float | None = None
    target: int | None = None
    last_change_at: float | None = None
    backlog: int = 0
    rates: tuple[Sample, ...] = ()
    jumps: JumpState = field(default_factory=JumpState)


@dataclass(frozen=True)
class Decision:
    """What the actuator should do now.

    ``target`` counts replicas that will be hot or warming once the actuator is done:
    observed READY and WARMING, plus ``start``, minus ``drain``. ``replace`` lists
    FAILED replicas to remove (their capacity is already in ``start``). The actuator
    claims ``start`` replicas from the warm pool first and cold-starts the rest.
    ``standbys`` is the warm-pool size to keep (None: the pool's own sizing rule).
    ``swap`` names the WARMING replicas, the latest started first, that the actuator may trade
    for READY standbys: a standby that turned READY while they warm serves in place of one of
    them (which goes to the pool), so a burst does not wait out a cold start beside an idle
    standby. It does not change ``target``: a swap keeps the count.
    """

    target: int
    start: int
    drain: tuple[str, ...]
    replace: tuple[str, ...]
    mode: ScalingMode
    hot: int
    warming: int
    reason: str
    floor: int = 0
    standbys: int | None = None
    swap: tuple[str, ...] = ()

    @property
    def below_floor(self) -> bool:
        """True when fewer replicas are hot than the floor asks (warming ones don't count)."""
        return self.hot < self.floor
