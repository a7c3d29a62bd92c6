"""The keep-warm loop between READY and the first request (warmgate.server.keepwarm)."""

from __future__ import annotations

import asyncio
import itertools

from warmgate.server.keepwarm import INTERVAL_S, keep_warm


def test_it_runs_every_interval_until_the_first_request() -> None:
    async def scenario() -> tuple[int, float]:
        traffic = asyncio.Event()
        loop = asyncio.get_running_loop()
        starts: list[float] = []

        async def run() -> None:
            starts.append(loop.time())
            if len(starts) == 4:
                traffic.set()  # the first request arrives while the fourth run is under way

        runs = await keep_warm(run, traffic, seconds=60.0)
        return runs, min(b - a for a, b in itertools.pairwise(starts))

    runs, shortest_gap = asyncio.run(scenario())
    assert runs == 4  # the fifth would have started after the request: none did
    assert shortest_gap >= INTERVAL_S * 0.9  # paced, not a busy loop


def test_it_stops_when_its_time_is_up_without_traffic() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    async def scenario() -> int:
        async def run() -> None:
            now[0] += 1.0  # each run moves the clock one second

        return await keep_warm(run, asyncio.Event(), seconds=3.0, clock=clock)

    assert asyncio.run(scenario()) == 3


def test_a_failing_run_ends_it_and_counts_only_the_runs_that_ran() -> None:
    counted: list[int] = []

    async def scenario() -> int:
        async def run() -> None:
            if len(counted) == 2:
                raise RuntimeError("backend gone")

        return await keep_warm(run, asyncio.Event(), seconds=60.0, on_run=lambda: counted.append(1))

    assert asyncio.run(scenario()) == 2
    assert len(counted) == 2


def test_it_stops_when_the_replica_leaves_ready() -> None:
    async def scenario() -> int:
        calls: list[int] = []

        async def run() -> None:
            calls.append(1)

        return await keep_warm(run, asyncio.Event(), seconds=60.0, serving=lambda: len(calls) < 3)

    assert asyncio.run(scenario()) == 3
