"""What the history computes: standby spans, billable time in a window, double claims."""

from __future__ import annotations

import pytest

from warmgate.fleet.store.history import (
    EventRecord,
    PoolEvent,
    billable_standby_s,
    claimed_while_claimed,
    standby_intervals,
)

E = PoolEvent


def history(member_id: str, *steps: tuple[PoolEvent, float | None], first_id: int = 0) -> list[EventRecord]:
    return [
        EventRecord(first_id + n, member_id, "k", "c", event, at, "") for n, (event, at) in enumerate(steps)
    ]


def test_a_member_is_billed_while_warming_or_ready_and_again_after_a_reuse() -> None:
    events = history("m", (E.REGISTERED, 0.0), (E.READY, 5.0), (E.CLAIMED, 10.0), (E.REUSED, 30.0))
    assert standby_intervals(events, now=50.0) == [(0.0, 10.0), (30.0, 50.0)]


def test_an_untimed_end_is_closed_by_the_next_timed_event() -> None:
    events = history("m", (E.REGISTERED, 0.0), (E.DRAINING, None), (E.REMOVED, 12.0))
    assert standby_intervals(events, now=50.0) == [(0.0, 12.0)]
    still_booked = history("m", (E.REGISTERED, 0.0), (E.ERRORED, None))
    assert standby_intervals(still_booked, now=50.0) == [(0.0, 50.0)]


def test_a_claimed_member_released_to_drain_is_not_billed_as_standby() -> None:
    events = history(
        "m", (E.REGISTERED, 0.0), (E.READY, 1.0), (E.CLAIMED, 2.0), (E.DRAINING, 9.0), (E.REMOVED, 9.5)
    )
    assert standby_intervals(events, now=50.0) == [(0.0, 2.0)]


def test_billable_time_is_clipped_to_the_window_and_sums_members() -> None:
    events = history("a", (E.REGISTERED, 0.0), (E.CLAIMED, 40.0)) + history(
        "b", (E.REGISTERED, 30.0), (E.ERRORED, 60.0), first_id=10
    )
    assert billable_standby_s(events, since=0.0, now=100.0) == pytest.approx(70.0)
    assert billable_standby_s(events, since=35.0, now=100.0) == pytest.approx(5.0 + 25.0)
    assert billable_standby_s(events, since=70.0, now=100.0) == 0.0


def test_a_second_claim_before_a_release_is_reported() -> None:
    fine = history(
        "m", (E.REGISTERED, 0.0), (E.READY, 1.0), (E.CLAIMED, 2.0), (E.REUSED, 3.0), (E.CLAIMED, 4.0)
    )
    assert claimed_while_claimed(fine) == []
    twice = history("m", (E.REGISTERED, 0.0), (E.READY, 1.0), (E.CLAIMED, 2.0), (E.CLAIMED, 3.0))
    assert claimed_while_claimed(twice) == ["m"]
