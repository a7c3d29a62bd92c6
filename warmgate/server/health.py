"""Readiness after READY: a live signal, not a latch.

A READY replica goes DEGRADED (``/ping`` 503, with the reason) when

* the inference thread has been busy on one call for longer than the watchdog limit, or
* ``fail_after`` batches in a row failed with a server-side error (client errors never count),

and comes back to READY by itself when the condition clears: the stalled call returns, or a
canary batch (the last request that succeeded, run again through the batcher) succeeds. A stall
that lasts ``stall_fail_s`` is beyond recovery: FAILED, ``/livez`` 503.

:func:`assess` is the pure decision; :class:`HealthMonitor` feeds it and applies its verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from warmgate.errors import http_status
from warmgate.models.base import Item
from warmgate.server.lifecycle import Lifecycle, Phase

log = logging.getLogger("warmgate.health")

# How often the monitor looks: a stall is seen at most this long after the watchdog limit.
TICK_S = 0.05


@dataclass(frozen=True)
class HealthPolicy:
    watchdog_s: float  # one inference call running longer than this: DEGRADED
    fail_after: int  # this many failed batches in a row: DEGRADED
    stall_fail_s: float  # one call running longer than this: FAILED (no way back)
    canary_interval_s: float  # while DEGRADED by failures, how often a canary batch is tried


class Verdict(enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class Signals:
    busy_for: float | None  # seconds the running inference call has taken; None when idle
    failures: int  # consecutive batches that failed with a server-side error
    last_error: str = ""


def assess(signals: Signals, policy: HealthPolicy) -> tuple[Verdict, str]:
    """The replica's health from what it observes, with the reason to show on ``/ping``."""
    busy = signals.busy_for
    if busy is not None and busy > policy.stall_fail_s:
        return Verdict.FAILED, (
            f"inference call stalled for {busy:.1f}s, past the {policy.stall_fail_s:g}s limit "
            "(WARMGATE_STALL_FAIL_S); the process should be restarted"
        )
    if busy is not None and busy > policy.watchdog_s:
        return Verdict.DEGRADED, (
            f"inference call running for {busy:.1f}s, past the watchdog limit of "
            f"{policy.watchdog_s:g}s (WARMGATE_WATCHDOG_S)"
        )
    if signals.failures >= policy.fail_after:
        return Verdict.DEGRADED, (
            f"{signals.failures} batches in a row failed on the server side; last: {signals.last_error}"
        )
    return Verdict.OK, ""


class BatchRecord:
    """Counts consecutive server-side batch failures and keeps the last item that succeeded
    (the canary). Wired as the batcher's ``on_outcome``."""

    def __init__(self) -> None:
        self.failures = 0
        self.last_error = ""
        self.canary: Item | None = None

    def __call__(self, items: Sequence[Item], error: BaseException | None) -> None:
        if error is None:
            self.failures = 0
            self.canary = items[0] if items else self.canary
        elif http_status(error) >= 500:  # 4xx is the client's input, never the replica's health
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"


Canary = Callable[[Item], Awaitable[object]]


class HealthMonitor:
    """Watches a serving replica and moves it READY ⇄ DEGRADED, or to FAILED via ``fail``."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        policy: HealthPolicy,
        busy_for: Callable[[], float | None],
        record: BatchRecord,
        canary: Canary,
        fail: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        self._lifecycle = lifecycle
        self._policy = policy
        self._busy_for = busy_for
        self._record = record
        self._canary = canary
        self._fail = fail
        self._clock = clock
        self._canary_task: asyncio.Task[None] | None = None
        self._next_canary = 0.0

    async def run(self) -> None:
        while self._lifecycle.phase in (Phase.READY, Phase.DEGRADED):
            self.tick()
            await asyncio.sleep(TICK_S)
        if self._canary_task is not None:
            self._canary_task.cancel()

    def signals(self) -> Signals:
        return Signals(self._busy_for(), self._record.failures, self._record.last_error)

    def tick(self) -> None:
        life = self._lifecycle
        verdict, reason = assess(self.signals(), self._policy)
        if verdict is Verdict.FAILED:
            self._fail(reason)
        elif verdict is Verdict.DEGRADED and life.phase is Phase.READY:
            life.transition(Phase.DEGRADED, reason)
        elif verdict is Verdict.OK and life.phase is Phase.DEGRADED:
            life.transition(Phase.READY, f"recovered ({life.reason})")
        if life.phase is Phase.DEGRADED and self._record.failures >= self._policy.fail_after:
            self._maybe_canary()

    def _maybe_canary(self) -> None:
        item = self._record.canary
        now = self._clock()
        if item is None or now < self._next_canary:
            return
        if self._canary_task is not None and not self._canary_task.done():
            return
        self._next_canary = now + self._policy.canary_interval_s
        self._canary_task = asyncio.get_running_loop().create_task(self._try(item), name="warmgate-canary")

    async def _try(self, item: Item) -> None:
        # Its outcome reaches BatchRecord through the batcher like any batch's; a failure here
        # only means the replica stays DEGRADED.
        with contextlib.suppress(Exception):
            await self._canary(item)
