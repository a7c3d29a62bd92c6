"""The policy's promises, as properties over random observation sequences, plus scenarios."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from warmgate.autoscaling.model import (
    Decision,
    Observation,
    PolicyState,
    ReplicaPhase,
    ReplicaView,
    ScalingConfig,
    ScalingMode,
    TargetMetric,
)
from warmgate.autoscaling.policy import decide

configs = st.builds(
    ScalingConfig,
    min_hot=st.integers(0, 4),
    max_replicas=st.integers(4, 10),
    metric=st.sampled_from(list(TargetMetric)),
    target_per_replica=st.floats(0.5, 8.0),
    metric_window_s=st.floats(0.0, 60.0),
    panic_window_s=st.floats(0.0, 12.0),
    panic_threshold=st.floats(1.0, 3.0),
    scale_out_window_s=st.floats(0.0, 30.0),
    scale_in_window_s=st.floats(0.0, 120.0),
)


Run = tuple[ScalingConfig, list[tuple[float, Observation]]]


@st.composite
def runs(draw: st.DrawFn) -> tuple[ScalingConfig, list[tuple[float, Observation]]]:
    """A config and a time-ordered sequence of observations no larger than max_replicas."""
    config = draw(configs)
    steps = draw(st.integers(1, 25))
    now = draw(st.floats(0.0, 1000.0))
    sequence = []
    for _ in range(steps):
        now += draw(st.sampled_from([0.5, 2.0, 5.0, 15.0, 60.0]))
        phases = draw(st.lists(st.sampled_from(list(ReplicaPhase)), max_size=config.max_replicas))
        replicas = tuple(
            ReplicaView(f"r{i}", phase, draw(st.integers(0, 12))) for i, phase in enumerate(phases)
        )
        observation = Observation(
            replicas,
            request_rate=draw(st.floats(0.0, 100.0)),
            queued=draw(st.integers(0, 30)),
        )
        sequence.append((now, observation))
    return config, sequence


def replay(
    config: ScalingConfig, sequence: list[tuple[float, Observation]]
) -> list[tuple[float, Observation, Decision]]:
    state = PolicyState()
    out = []
    for now, observation in sequence:
        decision, state = decide(observation, state, config, now)
        out.append((now, observation, decision))
    return out


def planned(observation: Observation, decision: Decision) -> int:
    alive = observation.hot + observation.count(ReplicaPhase.WARMING)
    return alive + decision.start - len(decision.drain)


@settings(max_examples=100, deadline=None)
@given(runs())
def test_never_fewer_than_min_hot_planned(run: Run) -> None:
    config, sequence = run
    for _, observation, decision in replay(config, sequence):
        assert planned(observation, decision) == decision.target
        assert decision.target >= config.min_hot
        ready_left = observation.hot - len(decision.drain)
        assert ready_left >= min(observation.hot, config.min_hot)


@settings(max_examples=100, deadline=None)
@given(runs())
def test_never_above_max_replicas(run: Run) -> None:
    config, sequence = run
    for _, observation, decision in replay(config, sequence):
        assert decision.target <= config.max_replicas
        assert planned(observation, decision) <= config.max_replicas


@settings(max_examples=100, deadline=None)
@given(runs())
def test_warming_is_never_counted_as_hot(run: Run) -> None:
    config, sequence = run
    for _, observation, decision in replay(config, sequence):
        ready_ids = set(observation.ids(ReplicaPhase.READY))
        assert decision.hot == len(ready_ids)
        assert decision.warming == observation.count(ReplicaPhase.WARMING)
        assert decision.below_floor == (len(ready_ids) < config.min_hot)
        assert set(decision.drain) <= ready_ids


@settings(max_examples=100, deadline=None)
@given(runs())
def test_no_scale_in_inside_the_stable_window(run: Run) -> None:
    config, sequence = run
    last_change = sequence[0][0]
    previous_target: int | None = None
    for now, observation, decision in replay(config, sequence):
        if decision.drain:
            assert now - last_change >= config.scale_in_window_s - 1e-6
            assert observation.count(ReplicaPhase.WARMING) == 0
            assert decision.mode is ScalingMode.STABLE
        if previous_target is not None and decision.target != previous_target:
            last_change = now
        previous_target = decision.target


@settings(max_examples=100, deadline=None)
@given(runs())
def test_a_failed_replica_is_always_replaced(run: Run) -> None:
    config, sequence = run
    for _, observation, decision in replay(config, sequence):
        failed = observation.ids(ReplicaPhase.FAILED)
        assert set(decision.replace) == set(failed)
        if failed:
            alive = observation.hot + observation.count(ReplicaPhase.WARMING)
            assert decision.start >= min(len(failed), config.max_replicas - alive)
            assert decision.drain == ()


@settings(max_examples=50, deadline=None)
@given(runs())
def test_decide_is_a_pure_function(run: Run) -> None:
    config, sequence = run
    assert replay(config, sequence) == replay(config, sequence)


def fleet(*phases: ReplicaPhase, in_flight: int = 0) -> tuple[ReplicaView, ...]:
    return tuple(ReplicaView(f"r{i}", p, in_flight) for i, p in enumerate(phases))


READY, WARMING, FAILED = ReplicaPhase.READY, ReplicaPhase.WARMING, ReplicaPhase.FAILED
RATE = ScalingConfig(metric=TargetMetric.INVOCATIONS, target_per_replica=5.0, max_replicas=20)


def test_warming_replicas_do_not_fill_the_floor() -> None:
    decision, _ = decide(Observation(fleet(WARMING, WARMING)), PolicyState(), RATE, 0.0)
    assert decision.hot == 0
    assert decision.below_floor
    assert decision.start == 0  # two are already on their way; they count toward the target


def test_a_spike_panics_and_scales_out_at_once() -> None:
    state = PolicyState()
    for t in range(0, 60, 2):
        _, state = decide(Observation(fleet(READY, READY), request_rate=2.0), state, RATE, t)
    decision, state = decide(Observation(fleet(READY, READY), request_rate=40.0), state, RATE, 60)
    # windows include their edge: the burst window (6 s) holds samples at 54, 56, 58 (2/s)
    # and 60 (40/s): mean 46/4 = 11.5/s, ceil(11.5 / 5) = 3 >= 1.5 x 2 hot: PANIC, to 3.
    # The stable window (30 s, samples 30..60) alone asks for ceil((15 x 2 + 40) / 16 / 5)
    # = ceil(0.875) = 1 and would hold at the floor.
    assert decision.mode is ScalingMode.PANIC
    assert (decision.target, decision.start) == (3, 1)
    decision, _ = decide(Observation(fleet(READY, READY), request_rate=40.0), state, RATE, 62)
    # burst: samples at 56, 58 (2/s), 60, 62 (40/s): mean 21/s -> ceil(4.2) = 5 replicas
    assert decision.mode is ScalingMode.PANIC
    assert (decision.target, decision.start) == (5, 3)


def test_stable_load_never_panics() -> None:
    state = PolicyState()
    for t in range(0, 120, 2):
        decision, state = decide(Observation(fleet(READY, READY, READY), request_rate=12.0), state, RATE, t)
        assert decision.mode is ScalingMode.STABLE
        assert decision.target == 3  # ceil(12 / 5)


def test_scale_in_waits_for_the_window_then_keeps_the_floor() -> None:
    config = ScalingConfig(
        metric=TargetMetric.INVOCATIONS,
        target_per_replica=5.0,
        metric_window_s=0.0,
        panic_window_s=0.0,
        scale_in_window_s=100.0,
    )
    five = fleet(READY, READY, READY, READY, READY)
    decision, state = decide(Observation(five, request_rate=25.0), PolicyState(), config, 0.0)
    assert decision.target == 5
    drained_at = None
    for t in range(10, 200, 10):
        decision, state = decide(Observation(five, request_rate=1.0), state, config, float(t))
        if decision.drain:
            drained_at = t
            break
    # the last 25/s sample (t=0) leaves the 100 s window at t=110: first scale-in there
    assert drained_at == 110
    assert len(decision.drain) == 3  # down to the floor of two, not to ceil(1/5) = 1
    assert decision.target == 2


def test_no_scale_in_while_a_replica_warms() -> None:
    config = ScalingConfig(scale_in_window_s=0.0, metric_window_s=0.0, panic_window_s=0.0)
    observation = Observation(fleet(READY, READY, READY, READY, WARMING))
    decision, _ = decide(observation, PolicyState(target=5, last_change_at=-1e9), config, 0.0)
    assert decision.drain == ()


def test_failed_replica_replaced_even_when_load_is_gone() -> None:
    observation = Observation(fleet(READY, READY, FAILED), request_rate=0.0)
    decision, _ = decide(observation, PolicyState(target=3, last_change_at=-1e9), RATE, 0.0)
    assert decision.replace == ("r2",)
    assert decision.start == 1
    assert decision.drain == ()
