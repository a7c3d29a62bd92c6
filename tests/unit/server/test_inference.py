"""The inference thread: one call at a time, off the event loop, niced, with a watchdog clock."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from warmgate.server.inference import InferenceWorkers, set_thread_slice


def thread_slice_ns() -> int | None:
    """The calling thread's EEVDF time slice (Linux 6.6+ with scheduler stats), else None."""
    try:
        text = open(f"/proc/self/task/{threading.get_native_id()}/sched").read()  # noqa: SIM115
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("se.slice"):
            return int(line.split(":")[1])
    return None


def custom_slices_work() -> bool:
    """Whether this kernel honours a thread's own slice (6.12+): asked for in a throwaway thread."""
    seen: list[int | None] = []

    def probe() -> None:
        set_thread_slice(300)
        seen.append(thread_slice_ns())

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return seen == [300_000]


needs_slices = pytest.mark.skipif(not custom_slices_work(), reason="custom time slices: Linux 6.12+")


def test_calls_run_in_order_on_one_dedicated_thread() -> None:
    async def scenario() -> list[tuple[int, str]]:
        worker = InferenceWorkers(niceness=0)
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
        worker = InferenceWorkers(niceness=0)
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
        worker = InferenceWorkers(niceness=0)
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
        worker = InferenceWorkers(niceness=5)
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
        worker = InferenceWorkers(niceness=5, idle=True)
        result = await worker.run_now(policies)
        worker.shutdown()
        return result

    assert asyncio.run(scenario()) == (os.SCHED_IDLE, os.SCHED_IDLE)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@needs_slices
def test_workers_and_the_threads_they_start_run_in_the_slice_asked_for_at_their_nice_level() -> None:
    """``--inference-slice-us 200``: the worker, and a thread it starts (as ONNX Runtime starts
    its intra-op pool), run in 200 µs slices at the lowered nice level; the caller keeps its own."""

    def slices() -> tuple[int | None, int | None, int]:
        seen: list[int | None] = []
        child = threading.Thread(target=lambda: seen.append(thread_slice_ns()))
        child.start()
        child.join()
        return thread_slice_ns(), seen[0], os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def scenario() -> tuple[int | None, int | None, int]:
        worker = InferenceWorkers(niceness=5, slice_us=200)
        result = await worker.run_now(slices)
        worker.shutdown()
        return result

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    caller_slice = thread_slice_ns()
    assert asyncio.run(scenario()) == (200_000, 200_000, min(19, mine + 5))
    assert thread_slice_ns() == caller_slice != 200_000


def test_grown_workers_run_calls_at_once_at_the_first_workers_priority() -> None:
    """Two calls that each wait for the other can only finish on two workers at once; the
    second worker, started by the first, runs at its lowered priority, not the caller's."""
    both = threading.Barrier(2, timeout=10)

    def meet() -> tuple[str, int]:
        both.wait()
        return threading.current_thread().name, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    async def scenario() -> list[tuple[str, int]]:
        worker = InferenceWorkers(niceness=5)
        await worker.grow(2)
        seen = await asyncio.gather(worker.run_now(meet), worker.run_now(meet))
        worker.shutdown()
        return sorted(seen)

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    lowered = min(19, mine + 5) if sys.platform.startswith("linux") else mine
    assert asyncio.run(scenario()) == [("warmgate-infer", lowered), ("warmgate-infer-1", lowered)]


def test_busy_for_is_the_longest_running_call_of_any_worker() -> None:
    first_started, second_started, release = threading.Event(), threading.Event(), threading.Event()
    now = [100.0]

    def hold(started: threading.Event) -> None:
        started.set()
        release.wait(10)

    async def scenario() -> tuple[float | None, float | None]:
        worker = InferenceWorkers(niceness=0, clock=lambda: now[0])
        await worker.grow(2)
        one = asyncio.ensure_future(worker.run_now(hold, first_started))
        assert await asyncio.to_thread(first_started.wait, 10)
        now[0] = 103.0
        two = asyncio.ensure_future(worker.run_now(hold, second_started))
        assert await asyncio.to_thread(second_started.wait, 10)
        now[0] = 104.0
        busy = worker.busy_for()  # the first began at 100, the second at 103
        release.set()
        await asyncio.gather(one, two)
        idle = worker.busy_for()
        worker.shutdown()
        return busy, idle

    assert asyncio.run(scenario()) == (4.0, None)
