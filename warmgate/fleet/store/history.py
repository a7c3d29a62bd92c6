"""The pool's history: one row per member event, and what is computed from it.

Every move a store makes is recorded in ``warmgate_pool_events`` inside the transaction that
makes it (member id, key, controller, event, time, reason), so the history and the books never
disagree. From it come the billable standby time (members WARMING or READY, ended ones
included), the terminated and reuse counts, and the check that no member was claimed twice
while claimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from warmgate.fleet.store.tx import Tx


class PoolEvent(Enum):
    REGISTERED = "registered"  # booked WARMING (its process is being started)
    READY = "ready"  # its /ping answered 200
    CLAIMED = "claimed"  # handed to a controller: it left the pool
    REUSED = "reused"  # released by its claimer and READY again (keep-alive renewed)
    ERRORED = "errored"  # ended: failed, timed out, or its controller's lease expired
    DRAINING = "draining"  # ended: recycled, drained, released, retired
    REMOVED = "removed"  # deleted from the books; its controller stops the process


_ENTER_STANDBY = (PoolEvent.REGISTERED, PoolEvent.REUSED)
_LEAVE_STANDBY = (PoolEvent.CLAIMED, PoolEvent.ERRORED, PoolEvent.DRAINING, PoolEvent.REMOVED)
ENDED = (PoolEvent.ERRORED, PoolEvent.DRAINING)


@dataclass(frozen=True)
class EventRecord:
    """One recorded event. ``at`` is ``None`` when the move was made without a time (for
    example ``mark_draining`` called without ``now``)."""

    event_id: int
    member_id: str
    key_digest: str
    controller: str
    event: PoolEvent
    at: float | None
    reason: str


def record(
    tx: Tx,
    member_id: str,
    key_digest: str,
    controller: str,
    event: PoolEvent,
    at: float | None,
    reason: str = "",
) -> None:
    tx.run(
        "INSERT INTO warmgate_pool_events (member_id, match_key, controller, event, at, reason) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (member_id, key_digest, controller, event.value, at, reason),
    )


EVENT_COLUMNS = "event_id, member_id, match_key, controller, event, at, reason"


def event_record(row: tuple[object, ...]) -> EventRecord:
    event_id, member_id, key_digest, controller, event, at, reason = row
    return EventRecord(
        int(str(event_id)),
        str(member_id),
        str(key_digest),
        str(controller),
        PoolEvent(event),
        None if at is None else float(str(at)),
        str(reason),
    )


def _by_member(events: Iterable[EventRecord]) -> dict[str, list[EventRecord]]:
    grouped: dict[str, list[EventRecord]] = {}
    for event in sorted(events, key=lambda e: e.event_id):
        grouped.setdefault(event.member_id, []).append(event)
    return grouped


def standby_intervals(events: Sequence[EventRecord], now: float) -> list[tuple[float, float]]:
    """The ``(start, end)`` spans one member spent WARMING or READY. A span starts when it is
    registered or reused and ends at its claim or end; an end recorded without a time is taken
    at the member's next timed event (its removal). A span still open ends at ``now``."""
    spans: list[tuple[float, float]] = []
    start: float | None = None
    closing = False
    for event in events:
        if event.event in _ENTER_STANDBY and event.at is not None:
            start, closing = event.at, False
        elif start is not None and (event.event in _LEAVE_STANDBY or closing):
            if event.at is None:
                closing = True
                continue
            spans.append((start, event.at))
            start, closing = None, False
    if start is not None:
        spans.append((start, now))
    return spans


def billable_standby_s(events: Iterable[EventRecord], since: float, now: float) -> float:
    """Seconds members spent WARMING or READY within ``[since, now]``, ended members included."""
    total = 0.0
    for member_events in _by_member(events).values():
        for start, end in standby_intervals(member_events, now):
            total += max(0.0, min(end, now) - max(start, since))
    return total


def claimed_while_claimed(events: Iterable[EventRecord]) -> list[str]:
    """Members claimed a second time without being released in between: must be empty."""
    twice: list[str] = []
    for member_id, member_events in _by_member(events).items():
        claimed = False
        for event in member_events:
            if event.event is PoolEvent.CLAIMED:
                if claimed:
                    twice.append(member_id)
                    break
                claimed = True
            elif event.event in (PoolEvent.REUSED, *ENDED, PoolEvent.REMOVED):
                claimed = False
    return twice
