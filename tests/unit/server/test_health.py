"""Readiness after READY: the pure assessment, the batch record, and the monitor's transitions."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from warmgate.errors import BadRequest, ModelError, PayloadTooLarge
from warmgate.models.base import Item
from warmgate.server.health import (
    BatchRecord,
    HealthMonitor,
    HealthPolicy,
    Signals,
    Verdict,
    assess,
)
from warmgate.server.lifecycle import Lifecycle, Phase

POLICY = HealthPolicy(watchdog_s=2.0, fail_after=3, stall_fail_s=60.0, canary_interval_s=1.0)
ITEM = Item(key="k", size=1, payload=None)


def test_idle_and_healthy_is_ok() -> None:
    assert assess(Signals(None, 0), POLICY) == (Verdict.OK, "")
    assert assess(Signals(1.9, 2), POLICY)[0] is Verdict.OK  # a slow call, two failures: not yet


def test_a_call_past_the_watchdog_degrades_and_names_the_limit() -> None:
    verdict, reason = assess(Signals(2.5, 0), POLICY)
    assert verdict is Verdict.DEGRADED
    assert "2.5s" in reason and "WARMGATE_WATCHDOG_S" in reason


def test_a_stall_past_the_fail_limit_is_terminal() -> None:
    verdict, reason = assess(Signals(61.0, 0), POLICY)
    assert verdict is Verdict.FAILED and "WARMGATE_STALL_FAIL_S" in reason


def test_consecutive_failures_degrade_with_the_last_error() -> None:
    verdict, reason = assess(Signals(None, 3, "ModelError: CUDA out of memory"), POLICY)
    assert verdict is Verdict.DEGRADED and "CUDA out of memory" in reason


@given(st.one_of(st.none(), st.floats(0, 100)), st.integers(0, 10))
def test_verdict_is_monotone_in_stall_time_and_failures(busy: float | None, failures: int) -> None:
    rank = {Verdict.OK: 0, Verdict.DEGRADED: 1, Verdict.FAILED: 2}
    base = rank[assess(Signals(busy, failures), POLICY)[0]]
    longer = None if busy is None else busy + 1.0
    assert rank[assess(Signals(longer, failures), POLICY)[0]] >= base
    assert rank[assess(Signals(busy, failures + 1), POLICY)[0]] >= base


def test_record_counts_server_errors_only_and_resets_on_success() -> None:
    record = BatchRecord()
    record([ITEM], ModelError("boom"))
    record([ITEM], BadRequest("client's fault"))
    record([ITEM], PayloadTooLarge("client's fault"))
    record([ITEM], RuntimeError("backend lost"))
    assert record.failures == 2 and "backend lost" in record.last_error
    assert record.canary is None
    record([ITEM], None)
    assert record.failures == 0 and record.canary is ITEM


def _monitor(
    life: Lifecycle, busy: list[float | None], record: BatchRecord, canaries: list[Item]
) -> HealthMonitor:
    failures: list[str] = []

    async def canary(item: Item) -> object:
        canaries.append(item)
        record([item], None)  # the canary batch succeeds
        return None

    def fail(reason: str) -> None:
        failures.append(reason)
        life.transition(Phase.FAILED, reason)

    return HealthMonitor(life, POLICY, lambda: busy[0], record, canary, fail, clock=lambda: 0.0)


def test_monitor_degrades_on_a_stall_and_recovers_when_it_ends() -> None:
    life = Lifecycle(phase=Phase.READY)
    busy: list[float | None] = [3.0]
    monitor = _monitor(life, busy, BatchRecord(), [])
    monitor.tick()
    assert life.phase is Phase.DEGRADED and "watchdog" in life.reason
    busy[0] = None
    monitor.tick()
    assert life.phase is Phase.READY and life.reason.startswith("recovered")


def test_monitor_runs_a_canary_while_degraded_by_failures_and_recovers() -> None:
    async def scenario() -> list[Phase]:
        life = Lifecycle(phase=Phase.READY)
        record = BatchRecord()
        record([ITEM], None)  # a request once succeeded: it becomes the canary
        for _ in range(3):
            record([ITEM], ModelError("device lost"))
        canaries: list[Item] = []
        monitor = _monitor(life, [None], record, canaries)
        phases = []
        monitor.tick()
        phases.append(life.phase)
        deadline = asyncio.get_running_loop().time() + 5
        while not canaries:
            assert asyncio.get_running_loop().time() < deadline, "no canary ran"
            await asyncio.sleep(0.001)
        monitor.tick()
        phases.append(life.phase)
        return phases

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == [Phase.DEGRADED, Phase.READY]


def test_monitor_fails_a_stall_beyond_recovery() -> None:
    life = Lifecycle(phase=Phase.DEGRADED)
    _monitor(life, [61.0], BatchRecord(), []).tick()
    assert life.phase is Phase.FAILED and not life.live
