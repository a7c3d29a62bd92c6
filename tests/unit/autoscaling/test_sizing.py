"""Standby sizing from observed rate jumps (warmgate.autoscaling.sizing), through the policy."""

from __future__ import annotations

import dataclasses

import pytest

from warmgate.autoscaling.model import (
    Observation,
    PolicyState,
    ReplicaPhase,
    ReplicaView,
    ScalingConfig,
    TargetMetric,
)
from warmgate.autoscaling.policy import decide
from warmgate.autoscaling.sizing import BurstSizing, JumpState, keep_standbys, likely_jump, observe_jump
from warmgate.errors import ConfigError

SIZING = BurstSizing(replica_capacity=10.0, horizon_s=60.0, utilisation=1.0)


def run(rates: list[float], sizing: BurstSizing = SIZING, tick_s: float = 2.0) -> JumpState:
    """Feed (short, long) = (rate, rate) every tick, as a steady average would."""
    state = JumpState()
    for i, rate in enumerate(rates):
        state = observe_jump(state, sizing, i * tick_s, rate, rate)
    return state


def test_no_standby_while_the_hot_fleet_covers_every_jump_seen() -> None:
    state = run([2.0, 3.0, 2.0, 4.0] * 60)  # noise: jumps of +2/s at most
    assert likely_jump(state, SIZING) == pytest.approx(2.0)
    _, standbys = keep_standbys(state, SIZING, 480.0, hot=2)
    assert standbys == 0  # 2 hot carry 20/s; the base is 2/s and the jump +2/s


def test_a_jump_once_seen_is_prepared_for_from_the_base() -> None:
    state = run([2.0] * 40 + [32.0] * 10 + [2.0] * 40)  # +30/s, then back to 2/s
    assert likely_jump(state, SIZING) == pytest.approx(30.0)
    _, standbys = keep_standbys(state, SIZING, 180.0, hot=2)
    assert standbys == 2  # 2 + 30 = 32/s; 2 hot carry 20; 12 more need 2 replicas of 10


def test_a_jump_is_not_stacked_on_a_plateau_above_the_highest_load_seen() -> None:
    state = run([2.0] * 40 + [32.0] * 200)  # +30/s, then a long plateau at 32/s
    assert likely_jump(state, SIZING) == pytest.approx(30.0)
    _, standbys = keep_standbys(state, SIZING, 480.0, hot=4)
    assert standbys == 0  # 4 hot carry 40 >= 32, the most seen; not 32 + 30


def test_target_burst_capacity_and_design_jump_set_a_floor_under_the_learned_jump() -> None:
    quiet = [2.0] * 60
    tbc = BurstSizing(replica_capacity=10.0, horizon_s=60.0, utilisation=1.0, target_burst_capacity=25.0)
    assert keep_standbys(run(quiet, tbc), tbc, 120.0, hot=2)[1] == 1  # 2 + 25 > 20
    design = BurstSizing(replica_capacity=10.0, horizon_s=60.0, utilisation=1.0, design_jump=15.0)
    assert keep_standbys(run(quiet, design), design, 120.0, hot=2)[1] == 1  # 15 x 2 = 30 > 20


def test_a_need_is_held_for_one_horizon_then_released() -> None:
    state = run([2.0] * 40 + [32.0] * 10 + [2.0] * 40)
    state, held = keep_standbys(state, SIZING, 180.0, hot=4)  # 4 hot carry 40: none needed
    assert held == 0
    state, needed = keep_standbys(state, SIZING, 182.0, hot=2)
    assert needed == 2
    state, still = keep_standbys(state, SIZING, 182.0 + 59.0, hot=4)
    assert still == 2  # within one horizon of the need
    _, released = keep_standbys(state, SIZING, 182.0 + 61.0, hot=4)
    assert released == 0


def test_bad_sizing_is_refused_with_the_field_named() -> None:
    with pytest.raises(ConfigError, match="replica_capacity"):
        BurstSizing(replica_capacity=0.0)
    with pytest.raises(ConfigError, match="design_jump"):
        BurstSizing(replica_capacity=1.0, design_jump=0.5)


def observation(rate: float, hot: int = 2) -> Observation:
    replicas = tuple(ReplicaView(f"r{i}", ReplicaPhase.READY) for i in range(hot))
    return Observation(replicas, request_rate=rate)


def replay(config: ScalingConfig) -> list[int | None]:
    state = PolicyState()
    standbys: list[int | None] = []
    for i in range(200):
        rate = 32.0 if 60 <= i < 70 else 2.0
        decision, state = decide(observation(rate), state, config, now=2.0 * i)
        standbys.append(decision.standbys)
    return standbys


def test_decide_names_the_standbys_and_is_pure() -> None:
    config = ScalingConfig(min_hot=2, metric=TargetMetric.INVOCATIONS, target_per_replica=7.0, burst=SIZING)
    seen = replay(config)
    assert seen == replay(config)  # the same observations give the same standbys
    assert seen[0] == 0  # nothing learned yet, and 2 hot carry the base
    assert seen[-1] is not None and seen[-1] >= 1  # the +30/s jump was learned and is kept
    plain = ScalingConfig(min_hot=2, metric=TargetMetric.INVOCATIONS, target_per_replica=7.0)
    assert set(replay(plain)) == {None}  # without sizing the pool keeps its own rule


def test_a_longer_hold_keeps_the_need_past_one_horizon() -> None:
    held = dataclasses.replace(SIZING, hold_s=300.0)
    state = run([2.0] * 40 + [32.0] * 10 + [2.0] * 40)
    state, needed = keep_standbys(state, held, 182.0, hot=2)
    assert needed == 2
    state, kept = keep_standbys(state, held, 182.0 + 61.0, hot=4)  # one horizon would release it
    assert kept == 2
    _, released = keep_standbys(state, held, 182.0 + 301.0, hot=4)
    assert released == 0
