"""The baselines behave as their engines do: AWS alarms over minutes, the HPA's stabilisation."""

from __future__ import annotations

from warmgate.autoscaling.engines import (
    AwsState,
    AwsTargetTracking,
    HpaState,
    KubernetesHpa,
    aws_target_tracking,
    k8s_hpa,
)
from warmgate.autoscaling.model import (
    Decision,
    Observation,
    ReplicaPhase,
    ReplicaView,
    ScalingConfig,
    TargetMetric,
)

CONFIG = ScalingConfig(min_hot=2, max_replicas=20, metric=TargetMetric.INVOCATIONS, target_per_replica=5.0)


def fleet(ready: int, warming: int = 0, rate: float = 0.0) -> Observation:
    views = [ReplicaView(f"r{i}", ReplicaPhase.READY) for i in range(ready)]
    views += [ReplicaView(f"w{i}", ReplicaPhase.WARMING) for i in range(warming)]
    return Observation(tuple(views), request_rate=rate)


def test_aws_scales_out_only_after_three_minutes_above_target() -> None:
    state = AwsState()
    starts: list[tuple[float, Decision]] = []
    for second in range(0, 400, 5):  # 20 requests/s on two replicas: 2 x the target
        decision, state = aws_target_tracking(fleet(2, rate=20.0), state, CONFIG, AwsTargetTracking(), second)
        if decision.start:
            starts.append((second, decision))
    first_at, first = starts[0]
    assert 180 <= first_at < 240  # the third full one-minute datapoint
    assert first.start == 2  # ceil(2 x 600 per minute / 300)


def test_aws_scales_in_only_after_fifteen_low_minutes() -> None:
    state = AwsState(desired=6)
    drained_at = None
    for second in range(0, 1200, 5):
        decision, state = aws_target_tracking(fleet(6, rate=1.0), state, CONFIG, AwsTargetTracking(), second)
        if decision.drain and drained_at is None:
            drained_at = second
    assert drained_at is not None and 900 <= drained_at < 960


def test_hpa_syncs_every_15_s_and_holds_scale_down_for_300_s() -> None:
    engine = KubernetesHpa()
    state = HpaState()
    decision, state = k8s_hpa(fleet(2, rate=30.0), state, CONFIG, engine, 0.0)
    assert decision.start == 4  # ceil(2 x 30 / 2 / 5) = 6 pods
    decision, state = k8s_hpa(fleet(2, 4, rate=30.0), state, CONFIG, engine, 10.0)
    assert decision.start == 0  # between syncs nothing changes
    first_drain = None
    for second in range(15, 700, 15):
        decision, state = k8s_hpa(fleet(6, rate=5.0), state, CONFIG, engine, float(second))
        if decision.drain and first_drain is None:
            first_drain = second
    assert first_drain is not None and 300 <= first_drain <= 315
