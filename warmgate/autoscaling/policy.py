"""The scaling policy: one pure function from (observation, state, config, now) to a decision.

No I/O, no clock (``now`` is an argument), no randomness. The data-gathering side (a
simulator, the local fleet, a controller) builds the :class:`Observation` and applies the
:class:`Decision`; this module only computes.

Steps, in order:

1. Record the metric sample; average it over the stable and the panic windows.
2. Recommend ``ceil(average / target_per_replica)`` replicas for each window.
3. Fast path (``fast_path_backlog``): a backlog that reached the threshold and grew since the
   last observation raises the panic recommendation to what the latest sample alone needs.
   Enter PANIC when the panic recommendation reaches ``panic_threshold`` x hot; leave it
   once a full metric window has passed without that. PANIC scales out to the panic
   recommendation at once and never scales in (Knative's panic mode).
4. Scale out to the lowest stable recommendation of the scale-out window; scale in to the
   highest of the scale-in window, and only when that window has passed since the last
   change, nothing is warming, nothing failed and the mode is STABLE.
5. Clamp to ``[min_hot, max_replicas]``; replace failed replicas at once.
6. With ``burst`` sizing on, measure the rate jump and name the standbys to keep
   (:mod:`warmgate.autoscaling.sizing`).
7. Name the WARMING replicas, the latest started first, as ``swap``: the actuation trades
   them for standbys that are READY by then (an observation lists replicas in start order).
"""

from __future__ import annotations

import math

from warmgate.autoscaling.model import (
    Decision,
    Observation,
    PolicyState,
    Recommendation,
    ReplicaPhase,
    ReplicaView,
    Sample,
    ScalingConfig,
    ScalingMode,
    TargetMetric,
)
from warmgate.autoscaling.sizing import JumpState, keep_standbys, observe_jump

_EPSILON = 1e-9


def decide(
    observation: Observation, state: PolicyState, config: ScalingConfig, now: float
) -> tuple[Decision, PolicyState]:
    """Decide how many replicas to start and which to drain; return the new state too."""
    ready = observation.count(ReplicaPhase.READY)
    warming = observation.count(ReplicaPhase.WARMING)
    failed = observation.ids(ReplicaPhase.FAILED)
    alive = ready + warming

    samples = _keep_recent(
        (*state.samples, Sample(now, _metric(observation, config))),
        now,
        max(config.metric_window_s, config.panic_window_s),
    )
    stable = _replicas_for(_average(samples, now, config.metric_window_s), config)
    burst = _replicas_for(_average(samples, now, config.panic_window_s), config)
    recommendations = tuple(
        r
        for r in (*state.recommendations, Recommendation(now, stable))
        if r.at > now - max(config.scale_in_window_s, config.scale_out_window_s) - _EPSILON
    )

    backlog = observation.waiting + observation.queued
    fast = 0
    if config.fast_path_backlog and backlog >= config.fast_path_backlog and backlog > state.backlog:
        fast = max(_replicas_for(samples[-1].value, config), ready + 1)
        burst = max(burst, fast)
    mode, panic_since = _next_mode(state, config, now, burst=burst, hot=ready)
    current = state.target if state.target is not None else alive
    last_change = state.last_change_at if state.last_change_at is not None else now

    scale_out_to = min(r.replicas for r in recommendations if r.at >= now - config.scale_out_window_s)
    scale_in_to = max(r.replicas for r in recommendations if r.at >= now - config.scale_in_window_s)
    desired = current
    reason = "hold"
    if mode is ScalingMode.PANIC and burst > desired:
        desired, reason = burst, "panic: backlog grew (fast path)" if fast else "panic: burst window"
    if scale_out_to > desired:
        desired, reason = scale_out_to, "scale out: stable window"
    scale_in_allowed = (
        mode is ScalingMode.STABLE
        and warming == 0
        and not failed
        and now - last_change >= config.scale_in_window_s - _EPSILON
    )
    if scale_in_to < desired and desired == current and scale_in_allowed:
        desired, reason = scale_in_to, "scale in: stable window"

    desired = min(max(desired, config.min_hot), config.max_replicas)
    if failed:
        desired = max(desired, min(config.max_replicas, alive + len(failed)))
        reason = f"replace {len(failed)} failed; {reason}"

    start = max(0, desired - alive)
    drain: tuple[str, ...] = ()
    if desired < alive:
        excess_over_cap = alive - config.max_replicas
        if scale_in_allowed or excess_over_cap > 0:
            count = alive - desired if scale_in_allowed else excess_over_cap
            drain = pick_drain(observation.replicas, min(count, ready - config.min_hot))
    target = alive + start - len(drain)
    rates, jumps, standbys = _size_pool(observation, state, config, now, target)

    decision = Decision(
        target=target,
        start=start,
        drain=drain,
        replace=failed,
        mode=mode,
        hot=ready,
        warming=warming,
        reason=reason,
        floor=config.min_hot,
        standbys=standbys,
        swap=tuple(reversed(observation.ids(ReplicaPhase.WARMING))),
    )
    changed = state.target is None or target != state.target
    new_state = PolicyState(
        samples=samples,
        recommendations=recommendations,
        mode=mode,
        panic_since=panic_since,
        target=target,
        last_change_at=now if changed else last_change,
        backlog=backlog,
        rates=rates,
        jumps=jumps,
    )
    return decision, new_state


def _size_pool(
    observation: Observation, state: PolicyState, config: ScalingConfig, now: float, target: int
) -> tuple[tuple[Sample, ...], JumpState, int | None]:
    sizing = config.burst
    if sizing is None:
        return (), state.jumps, None
    window = max(config.metric_window_s, config.panic_window_s)
    rates = _keep_recent((*state.rates, Sample(now, observation.request_rate)), now, window)
    short, long = (_average(rates, now, w) for w in (config.panic_window_s, config.metric_window_s))
    jumps = observe_jump(state.jumps, sizing, now, short, long)
    jumps, standbys = keep_standbys(jumps, sizing, now, target)
    return rates, jumps, standbys


def _metric(observation: Observation, config: ScalingConfig) -> float:
    if config.metric is TargetMetric.IN_FLIGHT:
        return float(observation.demand_in_flight)
    return observation.request_rate


def _keep_recent(samples: tuple[Sample, ...], now: float, window: float) -> tuple[Sample, ...]:
    return tuple(s for s in samples if s.at > now - window - _EPSILON)


def _average(samples: tuple[Sample, ...], now: float, window: float) -> float:
    inside = [s.value for s in samples if s.at > now - window - _EPSILON]
    return sum(inside) / len(inside)


def _replicas_for(metric_total: float, config: ScalingConfig) -> int:
    return math.ceil(metric_total / config.target_per_replica - _EPSILON)


def _next_mode(
    state: PolicyState, config: ScalingConfig, now: float, *, burst: int, hot: int
) -> tuple[ScalingMode, float | None]:
    if burst >= config.panic_threshold * max(hot, 1) and burst > hot:
        return ScalingMode.PANIC, now
    since = state.panic_since
    if state.mode is ScalingMode.PANIC and since is not None and now - since < config.metric_window_s:
        return ScalingMode.PANIC, since
    return ScalingMode.STABLE, None


def pick_drain(replicas: tuple[ReplicaView, ...], count: int) -> tuple[str, ...]:
    """The ``count`` READY replicas with the least in flight (ties by id)."""
    if count <= 0:
        return ()
    ready = [r for r in replicas if r.phase is ReplicaPhase.READY]
    ready.sort(key=lambda r: (r.in_flight, r.replica_id))
    return tuple(r.replica_id for r in ready[:count])
