"""Baselines modelled as their engines work, as pure steps like :func:`~.policy.decide`.

- :func:`aws_target_tracking`: Application Auto Scaling target tracking on SageMaker's
  ``InvocationsPerInstance``. CloudWatch publishes one datapoint a minute (invocations in that
  minute / InService instances). The scale-out alarm fires after ``out_datapoints`` (3)
  consecutive datapoints above the target; the scale-in alarm after ``in_datapoints`` (15)
  consecutive datapoints below 90 % of it. A firing alarm sets
  ``ceil(InService x metric / target)``. During the scale-out cooldown AWS scales out again
  only to a larger capacity, which a firing alarm here always asks for; scale-in waits
  ``in_cooldown_s`` after any scaling activity.
- :func:`k8s_hpa`: the Horizontal Pod Autoscaler. Every ``sync_s`` (15 s) it computes
  ``ceil(ready pods x average metric / target)``, skipped inside a 10 % tolerance; scale-up
  is limited to ``max(2 x pods, pods + 4)`` per sync; scale-down takes the highest
  recommendation of the last ``stabilisation_s`` (300 s).

Both take the same :class:`~.model.Observation` and return the same :class:`~.model.Decision`
as the warmgate policy, so the simulator applies them with the same actuation sequence.
Failed replicas are replaced at once (the instance / pod health check), and the floor and cap
are ``ScalingConfig.min_hot`` and ``max_replicas``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from warmgate.autoscaling.model import (
    Decision,
    Observation,
    PolicyState,
    ReplicaPhase,
    ScalingConfig,
    ScalingMode,
    TargetMetric,
)
from warmgate.autoscaling.policy import decide, pick_drain

_EPSILON = 1e-9


@dataclass(frozen=True)
class AwsTargetTracking:
    """Application Auto Scaling's documented defaults for target tracking."""

    period_s: float = 60.0
    out_datapoints: int = 3
    in_datapoints: int = 15
    in_threshold: float = 0.9
    in_cooldown_s: float = 300.0

    def describe(self) -> str:
        return (
            f"{self.period_s:g} s datapoints, scale out after {self.out_datapoints} above target, "
            f"in after {self.in_datapoints} below {self.in_threshold:g} x target, scale-in cooldown "
            f"{self.in_cooldown_s:g} s"
        )


@dataclass(frozen=True)
class AwsState:
    minute_start: float | None = None
    minute_requests: float = 0.0
    last_at: float | None = None
    datapoints: tuple[float, ...] = ()
    desired: int | None = None
    last_activity_at: float | None = None


def aws_target_tracking(
    observation: Observation, state: AwsState, config: ScalingConfig, engine: AwsTargetTracking, now: float
) -> tuple[Decision, AwsState]:
    hot = observation.hot
    alive = hot + observation.count(ReplicaPhase.WARMING)
    desired = state.desired if state.desired is not None else max(alive, config.min_hot)
    dt = 0.0 if state.last_at is None else now - state.last_at
    start = now if state.minute_start is None else state.minute_start
    requests = state.minute_requests + observation.request_rate * dt
    datapoints = state.datapoints
    reason = "hold"
    last_activity = state.last_activity_at
    if now - start >= engine.period_s - _EPSILON:
        per_instance = requests / max(hot, 1)
        target = config.target_per_replica * engine.period_s
        keep = max(engine.out_datapoints, engine.in_datapoints)
        datapoints = (*datapoints, per_instance)[-keep:]
        start, requests = now, 0.0
        wanted = math.ceil(max(hot, 1) * per_instance / target - _EPSILON)
        out = datapoints[-engine.out_datapoints :]
        low = datapoints[-engine.in_datapoints :]
        if len(out) == engine.out_datapoints and all(d > target for d in out) and wanted > desired:
            desired, reason, last_activity = wanted, "scale-out alarm", now
        elif (
            len(low) == engine.in_datapoints
            and all(d < engine.in_threshold * target for d in low)
            and wanted < desired
            and (last_activity is None or now - last_activity >= engine.in_cooldown_s)
        ):
            desired, reason, last_activity = wanted, "scale-in alarm", now
    desired = min(max(desired, config.min_hot), config.max_replicas)
    new_state = AwsState(start, requests, now, datapoints, desired, last_activity)
    return plan(observation, desired, config, reason), new_state


@dataclass(frozen=True)
class KubernetesHpa:
    sync_s: float = 15.0
    tolerance: float = 0.1
    stabilisation_s: float = 300.0

    def describe(self) -> str:
        return (
            f"{self.sync_s:g} s sync, {self.tolerance:g} tolerance, "
            f"{self.stabilisation_s:g} s scale-down stabilisation"
        )


@dataclass(frozen=True)
class HpaState:
    last_sync: float | None = None
    desired: int | None = None
    recommendations: tuple[tuple[float, int], ...] = ()


def k8s_hpa(
    observation: Observation, state: HpaState, config: ScalingConfig, engine: KubernetesHpa, now: float
) -> tuple[Decision, HpaState]:
    hot = observation.hot
    alive = hot + observation.count(ReplicaPhase.WARMING)
    desired = state.desired if state.desired is not None else max(alive, config.min_hot)
    if state.last_sync is not None and now - state.last_sync < engine.sync_s - _EPSILON:
        return plan(observation, desired, config, "hold"), state
    metric = (
        observation.demand_in_flight if config.metric is TargetMetric.IN_FLIGHT else observation.request_rate
    )
    ratio = metric / max(hot, 1) / config.target_per_replica
    current = max(alive, 1)
    raw = current if abs(ratio - 1.0) <= engine.tolerance else math.ceil(max(hot, 1) * ratio - _EPSILON)
    raw = min(raw, max(2 * current, current + 4))
    recent = (r for r in state.recommendations if r[0] > now - engine.stabilisation_s)
    recs = (*recent, (now, raw))
    wanted = raw if raw >= desired else max(n for _, n in recs)
    wanted = min(max(wanted, config.min_hot), config.max_replicas)
    reason = "hold" if wanted == desired else ("scale up" if wanted > desired else "scale down")
    return plan(observation, wanted, config, reason), HpaState(now, wanted, recs)


def plan(observation: Observation, desired: int, config: ScalingConfig, reason: str) -> Decision:
    """Start or drain towards ``desired``; replace failed replicas; drain READY ones only,
    never below ``min_hot``."""
    ready = observation.hot
    warming = observation.count(ReplicaPhase.WARMING)
    failed = observation.ids(ReplicaPhase.FAILED)
    alive = ready + warming
    start = max(0, desired - alive)
    drain = pick_drain(observation.replicas, min(alive - desired, ready - config.min_hot))
    if failed:
        reason = f"replace {len(failed)} failed; {reason}"
    return Decision(
        target=alive + start - len(drain),
        start=start,
        drain=drain,
        replace=failed,
        mode=ScalingMode.STABLE,
        hot=ready,
        warming=warming,
        reason=reason,
        floor=config.min_hot,
    )


@dataclass(frozen=True)
class KnativeStyle:
    """warmgate's own policy (:func:`~.policy.decide`): Knative-style stable and panic windows."""

    def describe(self, config: ScalingConfig) -> str:
        return (
            f"{config.metric.value} target {config.target_per_replica:g}/replica, "
            f"{config.metric_window_s:g} s stable / {config.panic_window_s:g} s panic window, "
            f"panic at {config.panic_threshold:g} x hot, scale-in window {config.scale_in_window_s:g} s"
            + (f", fast path at a backlog of {config.fast_path_backlog}" if config.fast_path_backlog else "")
        )


EngineModel = KnativeStyle | AwsTargetTracking | KubernetesHpa
EngineState = PolicyState | AwsState | HpaState


def step(
    engine: EngineModel,
    observation: Observation,
    state: EngineState | None,
    config: ScalingConfig,
    now: float,
) -> tuple[Decision, EngineState]:
    """One control step of ``engine``; ``state`` None starts it afresh."""
    if isinstance(engine, AwsTargetTracking):
        aws = state if isinstance(state, AwsState) else AwsState()
        return aws_target_tracking(observation, aws, config, engine, now)
    if isinstance(engine, KubernetesHpa):
        hpa = state if isinstance(state, HpaState) else HpaState()
        return k8s_hpa(observation, hpa, config, engine, now)
    own = state if isinstance(state, PolicyState) else PolicyState()
    return decide(observation, own, config, now)


def describe(engine: EngineModel, config: ScalingConfig) -> str:
    """The engine's parameters, for a table header."""
    bounds = f"min {config.min_hot}, max {config.max_replicas}"
    if isinstance(engine, KnativeStyle):
        return f"{bounds}, {engine.describe(config)}"
    unit = "requests/s" if config.metric is TargetMetric.INVOCATIONS else "in flight"
    return f"{bounds}, target {config.target_per_replica:g} {unit}/replica, {engine.describe()}"
