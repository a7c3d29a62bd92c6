"""One enum, one transition table, one transition() that rejects illegal moves."""

from __future__ import annotations

import logging

import pytest

from warmgate.server.lifecycle import TRANSITIONS, IllegalTransition, Lifecycle, Phase


def test_happy_path_logs_each_transition_with_reason(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[Phase, Phase]] = []
    life = Lifecycle(on_change=lambda old, new: seen.append((old, new)))
    caplog.set_level(logging.INFO, "warmgate.lifecycle")
    for phase in (Phase.LOADING, Phase.WARMING, Phase.READY, Phase.DRAINING, Phase.STOPPED):
        life.transition(phase, f"to {phase.value}")
    assert [new for _, new in seen] == [
        Phase.LOADING,
        Phase.WARMING,
        Phase.READY,
        Phase.DRAINING,
        Phase.STOPPED,
    ]
    assert "phase warming -> ready" in caplog.text and "to ready" in caplog.text


@pytest.mark.parametrize("start", list(Phase))
def test_every_move_outside_the_table_is_rejected(start: Phase) -> None:
    for target in Phase:
        life = Lifecycle(phase=start)
        if target in TRANSITIONS[start]:
            life.transition(target, "ok")
            assert life.phase is target
        else:
            with pytest.raises(IllegalTransition):
                life.transition(target, "nope")
            assert life.phase is start


def test_failed_from_start_up_or_after_ready_never_from_draining() -> None:
    assert {p for p, targets in TRANSITIONS.items() if Phase.FAILED in targets} == {
        Phase.LOADING,
        Phase.WARMING,
        Phase.READY,
        Phase.DEGRADED,
    }


def test_degraded_is_a_recoverable_not_ready_state_after_ready() -> None:
    life = Lifecycle(phase=Phase.READY)
    life.transition(Phase.DEGRADED, "inference call running for 31.0s")
    assert not life.ready and not life.serving and life.live
    assert life.to_json()["reason"] == "inference call running for 31.0s"
    life.transition(Phase.READY, "recovered")
    assert life.ready
    assert {p for p, targets in TRANSITIONS.items() if Phase.DEGRADED in targets} == {Phase.READY}
    with pytest.raises(IllegalTransition):
        Lifecycle(phase=Phase.WARMING).transition(Phase.DEGRADED, "not before READY")


def test_failed_is_terminal_and_not_live() -> None:
    life = Lifecycle(phase=Phase.DEGRADED)
    life.transition(Phase.FAILED, "the batcher's loop ended")
    assert not life.live and not life.ready
    assert TRANSITIONS[Phase.FAILED] == frozenset({Phase.STOPPED})


def test_readiness_and_serving_flags() -> None:
    life = Lifecycle(phase=Phase.READY)
    assert life.ready and life.serving
    life.transition(Phase.DRAINING, "sigterm")
    assert not life.ready and life.serving
    assert life.to_json()["phase"] == "draining"
