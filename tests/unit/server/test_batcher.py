"""The batcher: grouping by key within the model's limits, delays, drops, errors, and its loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import pytest

from warmgate.errors import InferenceTimeout, ModelError
from warmgate.models.base import Item
from warmgate.server.batcher import Batcher
from warmgate.server.grouping import BatchLimits


class Recorder:
    """An ``execute`` that records each batch and echoes each item's payload."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.batches: list[list[Any]] = []
        self.gate = gate

    async def __call__(self, items: Sequence[Item]) -> list[Any]:
        self.batches.append([it.payload for it in items])
        if self.gate is not None:
            await self.gate.wait()
        return [it.payload for it in items]


def item(payload: Any, key: str = "k", size: int = 1) -> Item:
    return Item(key=key, size=size, payload=payload)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 10))


async def until_running(execute: Recorder, timeout_s: float = 5.0) -> None:
    """Wait until the first batch has reached ``execute``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not execute.batches:
        assert asyncio.get_running_loop().time() < deadline, "no batch reached execute"
        await asyncio.sleep(0.001)


def test_same_key_requests_share_a_batch_up_to_max_rows() -> None:
    async def scenario() -> Recorder:
        execute = Recorder()
        batcher = Batcher(execute, BatchLimits(4), max_delay_s=0.05)
        batcher.start()
        out = await asyncio.gather(*(batcher.submit(item(n), 5) for n in range(10)))
        assert out == list(range(10))
        await batcher.drain(5)
        return execute

    batches = run(scenario()).batches
    assert [len(b) for b in batches] == [4, 4, 2]
    assert [p for b in batches for p in b] == list(range(10))


def test_a_fixed_batch_axis_gets_one_request_per_call() -> None:
    async def scenario() -> Recorder:
        execute = Recorder()
        batcher = Batcher(execute, BatchLimits(8, fixed=True), max_delay_s=0.05)
        batcher.start()
        out = await asyncio.gather(*(batcher.submit(item(n), 5) for n in range(64)))
        assert out == list(range(64))
        await batcher.drain(5)
        return execute

    assert [len(b) for b in run(scenario()).batches] == [1] * 64


def test_keys_never_mix() -> None:
    async def scenario() -> Recorder:
        execute = Recorder()
        batcher = Batcher(execute, BatchLimits(16), max_delay_s=0.05)
        batcher.start()
        await asyncio.gather(*(batcher.submit(item((key, n), key), 5) for n in range(4) for key in "ab"))
        await batcher.drain(5)
        return execute

    for batch in run(scenario()).batches:
        assert len({key for key, _ in batch}) == 1


def test_a_cancelled_caller_is_dropped_and_its_batch_mates_still_served() -> None:
    async def scenario() -> Recorder:
        gate = asyncio.Event()
        execute = Recorder(gate)
        batcher = Batcher(execute, BatchLimits(1), max_delay_s=0.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(item("running"), 5))
        queued = [asyncio.ensure_future(batcher.submit(item(n), 5)) for n in range(3)]
        await until_running(execute)
        queued[1].cancel()
        gate.set()
        assert await first == "running"
        assert [await queued[0], await queued[2]] == [0, 2]
        with pytest.raises(asyncio.CancelledError):
            await queued[1]
        await batcher.drain(5)
        return execute

    assert run(scenario()).batches == [["running"], [0], [2]]


def test_a_request_that_times_out_while_queued_is_never_run() -> None:
    async def scenario() -> Recorder:
        gate = asyncio.Event()
        execute = Recorder(gate)
        batcher = Batcher(execute, BatchLimits(1), max_delay_s=0.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(item("running"), 5))
        await until_running(execute)
        with pytest.raises(InferenceTimeout, match="SAGEMAKER_MODEL_SERVER_TIMEOUT"):
            await batcher.submit(item("late"), 0.01)
        gate.set()
        assert await first == "running"
        await batcher.drain(5)
        return execute

    assert run(scenario()).batches == [["running"]]


def test_model_errors_reach_every_batch_mate_and_the_loop_goes_on() -> None:
    outcomes: list[tuple[int, str | None]] = []

    async def failing(items: Sequence[Item]) -> list[Any]:
        if items[0].payload == "bad":
            raise ModelError("the model broke")
        return [it.payload for it in items][:1]  # wrong count unless the batch has one item

    async def scenario() -> None:
        batcher = Batcher(
            failing,
            BatchLimits(2),
            max_delay_s=0.05,
            on_outcome=lambda items, err: outcomes.append((len(items), type(err).__name__ if err else None)),
        )
        batcher.start()
        results = await asyncio.gather(
            batcher.submit(item("bad"), 5), batcher.submit(item("x"), 5), return_exceptions=True
        )
        assert all(isinstance(r, ModelError) for r in results)
        two = await asyncio.gather(
            batcher.submit(item("a"), 5), batcher.submit(item("b"), 5), return_exceptions=True
        )
        assert all(isinstance(r, ModelError) and "1 outputs for a batch of 2" in str(r) for r in two)
        assert await batcher.submit(item("alone"), 5) == "alone"  # the loop survived both
        await batcher.drain(5)

    run(scenario())
    assert outcomes == [(2, "ModelError"), (2, "ModelError"), (1, None)]


def broken_metric(rows: int) -> None:
    raise RuntimeError("metrics exporter broke")


def broken_outcome(items: Sequence[Item], error: BaseException | None) -> None:
    raise RuntimeError("outcome hook broke")


@pytest.mark.parametrize(
    ("hooks", "needle"),
    [
        ({"on_batch": broken_metric}, "metrics exporter broke"),  # in the loop itself
        ({"on_outcome": broken_outcome, "concurrency": 2}, "outcome hook broke"),  # in a run's task
    ],
)
def test_a_loop_that_ends_is_visible_on_its_task(hooks: dict[str, Any], needle: str) -> None:
    async def scenario() -> BaseException | None:
        batcher = Batcher(Recorder(), BatchLimits(2), max_delay_s=0.0, **hooks)
        task = batcher.start()
        ended = asyncio.get_running_loop().create_future()
        task.add_done_callback(lambda t: ended.set_result(t.exception()))
        waiter = asyncio.ensure_future(batcher.submit(item(1), 0.5))
        exc = await asyncio.wait_for(ended, 5)
        with contextlib.suppress(InferenceTimeout):
            await waiter
        return exc

    exc = run(scenario())
    assert isinstance(exc, RuntimeError) and needle in str(exc)


class SlowRecorder(Recorder):
    """Each batch takes ``seconds`` (simulated work on the backend, not synchronisation)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def __call__(self, items: Sequence[Item]) -> list[Any]:
        self.batches.append([it.payload for it in items])
        await asyncio.sleep(self.seconds)
        return [it.payload for it in items]


def test_after_a_big_batch_a_few_leftovers_wait_for_their_batch_mates() -> None:
    async def scenario() -> Recorder:
        execute = SlowRecorder(0.2)  # regroup window: min(0.25 × 0.2 s, 20 ms) = 20 ms
        batcher = Batcher(execute, BatchLimits(8), max_delay_s=0.0)
        batcher.start()
        first = [asyncio.ensure_future(batcher.submit(item(n), 5)) for n in range(8)]
        await until_running(execute)
        leftover = asyncio.ensure_future(batcher.submit(item("left"), 5))  # queued during the run
        assert await asyncio.gather(*first) == list(range(8))
        # The first batch's callers come straight back, as closed-loop clients do.
        again = await asyncio.gather(*(batcher.submit(item(f"again-{n}"), 5) for n in range(3)))
        assert again == ["again-0", "again-1", "again-2"] and await leftover == "left"
        await batcher.drain(5)
        return execute

    batches = run(scenario()).batches
    assert batches == [list(range(8)), ["left", "again-0", "again-1", "again-2"]]


class GatedRecorder(Recorder):
    """Each batch waits for its own gate, opened by the test, so batches overlap at will."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[asyncio.Event] = []

    async def __call__(self, items: Sequence[Item]) -> list[Any]:
        gate = asyncio.Event()
        self.gates.append(gate)
        self.batches.append([it.payload for it in items])
        await gate.wait()
        return [it.payload for it in items]


async def until_batches(execute: Recorder, count: int, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(execute.batches) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(execute.batches)} batches, wanted {count}"
        await asyncio.sleep(0.001)


def test_two_instances_share_the_queue_run_at_once_and_every_caller_gets_its_own() -> None:
    async def scenario() -> GatedRecorder:
        execute = GatedRecorder()
        batcher = Batcher(execute, BatchLimits(4), max_delay_s=0.0, concurrency=2)
        batcher.start()
        first = [asyncio.ensure_future(batcher.submit(item(n), 5)) for n in range(4)]
        await until_batches(execute, 2)  # both instances idle: the four are shared out, 2 + 2
        more = [asyncio.ensure_future(batcher.submit(item(n), 5)) for n in range(4, 7)]
        for _ in range(20):  # both instances busy: the next batch must not start
            await asyncio.sleep(0)
        assert len(execute.batches) == 2 and batcher.depth == 3
        execute.gates[1].set()  # the second finishes first; its callers need not wait
        assert await asyncio.gather(*first[2:]) == [2, 3]
        assert not any(f.done() for f in first[:2])
        await until_batches(execute, 3)  # one instance free: it takes all three (up to 4 rows)
        execute.gates[0].set()
        execute.gates[2].set()
        assert await asyncio.gather(*first[:2]) == [0, 1]
        assert await asyncio.gather(*more) == [4, 5, 6]
        await batcher.drain(5)
        return execute

    assert run(scenario()).batches == [[0, 1], [2, 3], [4, 5, 6]]


def test_one_instance_runs_one_batch_at_a_time() -> None:
    async def scenario() -> GatedRecorder:
        execute = GatedRecorder()
        batcher = Batcher(execute, BatchLimits(4), max_delay_s=0.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(item("a"), 5))
        await until_batches(execute, 1)
        second = asyncio.ensure_future(batcher.submit(item("b"), 5))
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(execute.batches) == 1 and batcher.depth == 1
        execute.gates[0].set()
        await until_batches(execute, 2)
        execute.gates[1].set()
        assert (await first, await second) == ("a", "b")
        await batcher.drain(5)
        return execute

    assert run(scenario()).batches == [["a"], ["b"]]
