"""The inference thread: one call at a time, off the event loop, niced, with a watchdog clock."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from warmgate.server.inference import InferenceThread


def test_calls_run_in_order_on_one_dedicated_thread() -> None:
    async def scenario() -> list[tuple[int, str]]:
        worker = InferenceThread(niceness=0)
        seen: list[tuple[int, str]] = []

        def call(n: int) -> int:
            seen.append((n, threading.current_thread().name))
            return n * 2

        results = await asyncio.gather(*(worker.run_now(call, n) for n in range(5)))
        assert results == [0, 2, 4, 6, 8]
        worker.shutdown()
        return seen

    seen = asyncio.run(scenario())
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert {name for _, name in seen} == {"warmgate-infer"}


def test_exceptions_reach_the_caller_unchanged() -> None:
    class Boom(Exception):
        pass

    def fail() -> None:
        raise Boom("from the model")

    async def scenario() -> None:
        worker = InferenceThread(niceness=0)
        with pytest.raises(Boom, match="from the model"):
            await worker.run_now(fail)
        assert await worker.run_now(lambda: 7) == 7  # the thread survives
        worker.shutdown()

    asyncio.run(scenario())


def test_busy_for_measures_the_running_call_and_clears_after() -> None:
    started, release = threading.Event(), threading.Event()

    def stall() -> str:
        started.set()
        release.wait(10)
        return "done"

    async def scenario() -> None:
        worker = InferenceThread(niceness=0)
        assert worker.busy_for() is None
        call = asyncio.ensure_future(worker.run_now(stall))
        assert await asyncio.to_thread(started.wait, 10)
        first = worker.busy_for()
        assert first is not None and first >= 0
        await asyncio.sleep(0.05)  # time passing is what is measured here, not synchronisation
        second = worker.busy_for()
        assert second is not None and second >= first + 0.04
        release.set()
        assert await asyncio.wait_for(call, 10) == "done"
        assert worker.busy_for() is None
        worker.shutdown()

    asyncio.run(scenario())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread niceness is Linux-only")
def test_the_thread_runs_at_a_lower_priority_than_the_caller() -> None:
    async def scenario() -> tuple[int, int]:
        worker = InferenceThread(niceness=5)
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        theirs = await worker.run_now(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        worker.shutdown()
        return mine, theirs

    mine, theirs = asyncio.run(scenario())
    assert theirs == min(19, mine + 5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux-only")
def test_an_idle_class_thread_and_the_threads_it_starts_run_sched_idle() -> None:
    """``--inference-idle``: the thread, and a thread it starts (as ONNX Runtime starts its
    intra-op pool), are in SCHED_IDLE; the caller's class is untouched."""

    def policies() -> tuple[int, int]:
        seen: list[int] = []
        child = threading.Thread(target=lambda: seen.append(os.sched_getscheduler(0)))
        child.start()
        child.join()
        return os.sched_getscheduler(0), seen[0]

    async def scenario() -> tuple[int, int]:
        worker = InferenceThread(niceness=5, idle=True)
        result = await worker.run_now(policies)
        worker.shutdown()
        return result

    assert asyncio.run(scenario()) == (os.SCHED_IDLE, os.SCHED_IDLE)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER
