"""Dynamic batching: requests wait briefly to share a batch with others of the same bucket.

Requests are grouped by ``Item.key`` (their shape bucket). A batch closes when it is full (see
:mod:`warmgate.server.grouping`, sized from the loaded model's own limits) or when its oldest
request has waited ``max_delay_s``; while a batch runs, new requests accumulate, so batches grow
with load. Right after a run, a queue far smaller than the last batch waits a fraction of that
run for its batch-mates (:func:`grouping.regroup_wait`), so a saturated backend runs full
batches back to back. Batches are handed to ``execute`` (the inference workers), as many at once
as the model has instances; the event loop never runs inference. A request whose caller timed
out or went away while queued is dropped; its batch-mates are unaffected.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from warmgate.errors import InferenceTimeout, ModelError
from warmgate.models.base import Item
from warmgate.server import grouping
from warmgate.server.grouping import BatchLimits

Execute = Callable[[Sequence[Item]], Awaitable[list[Any]]]
# Called after every batch with its items and the error it raised (None when it succeeded).
Outcome = Callable[[Sequence[Item], BaseException | None], None]


@dataclass(frozen=True)
class _LastRun:
    key: Hashable
    rows: int
    seconds: float
    ended: float


@dataclass
class _Pending:
    item: Item
    future: asyncio.Future[Any]
    enqueued: float


class Batcher:
    def __init__(
        self,
        execute: Execute,
        limits: BatchLimits,
        max_delay_s: float,
        on_batch: Callable[[int], None] = lambda rows: None,
        on_outcome: Outcome = lambda items, error: None,
        regroup: bool = True,
        concurrency: int = 1,
    ) -> None:
        """``concurrency``: batches handed to ``execute`` at once (the model's instances); the
        next batch forms only when one of them is free, so batches grow while all are busy."""
        self._execute = execute
        self.limits = limits
        self._max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._on_outcome = on_outcome
        self._queues: dict[Hashable, deque[_Pending]] = {}
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._regroup = regroup
        self._last: _LastRun | None = None
        self._concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self._concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._crash: BaseException | None = None  # a run task's bug, re-raised by the loop

    # --- public -------------------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        """Start the loop; the caller watches the returned task (it ends only by a bug)."""
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="warmgate-batcher")
        return self._task

    @property
    def depth(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def submit(self, item: Item, timeout_s: float) -> Any:
        """Queue ``item`` and wait for its output; ``InferenceTimeout`` after ``timeout_s``.

        A timed-out request still queued is dropped (its future is cancelled and skipped); one
        already running finishes on the inference thread and its output is discarded.
        """
        loop = asyncio.get_running_loop()
        pending = _Pending(item, loop.create_future(), time.monotonic())
        self._queues.setdefault(item.key, deque()).append(pending)
        self._idle.clear()
        self._wakeup.set()
        # The future itself is awaited and a timer fails it at the deadline: one timer handle
        # a request, where asyncio.wait added a waiter future, a set and callbacks (the event
        # loop's per-request work, paid under saturation). Either way the future is done
        # (timed out, or cancelled with its caller), so the batcher drops it if still queued.
        timer = loop.call_later(timeout_s, _expire, pending.future, timeout_s)
        try:
            return await pending.future
        finally:
            timer.cancel()

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until every queued request has been served, then stop the loop."""
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            self._task.cancel()

    # --- internals ----------------------------------------------------------------------------

    def _live(self, key: Hashable) -> list[_Pending]:
        """The key's queue without requests whose callers have gone (dropped here)."""
        queue = self._queues.get(key)
        if queue is None:
            return []
        alive = deque(p for p in queue if not p.future.done())
        if alive:
            self._queues[key] = alive
        else:
            del self._queues[key]
        return list(alive)

    def _take(self, key: Hashable) -> list[_Pending]:
        live = self._live(key)
        sizes = [p.item.size for p in live]
        count = grouping.take(sizes, self.limits)
        idle = self._concurrency - len(self._running) - 1  # instances free besides this one
        if idle > 0 and count > 1:
            # Share the queue out: instances left idle would make this batch wait on one
            # instance's threads alone (ceil: this one takes the larger part).
            share = BatchLimits(max(1, math.ceil(sum(sizes[:count]) / (idle + 1))), self.limits.fixed)
            count = grouping.take(sizes[:count], share)
        batch = live[:count]
        queue = self._queues.get(key)
        if queue is not None:
            for _ in range(count):
                queue.popleft()
            if not queue:
                del self._queues[key]
        return batch

    def _full(self, key: Hashable) -> bool:
        return grouping.full([p.item.size for p in self._live(key)], self.limits)

    def _next_key(self) -> Hashable | None:
        for key in list(self._queues):
            self._live(key)
        return grouping.oldest({key: q[0].enqueued for key, q in self._queues.items()})

    async def _loop(self) -> None:
        while True:
            if self._crash is not None:
                raise self._crash
            if self._next_key() is None:
                if not self._running:
                    self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()  # a free instance; until then requests queue up
            key = self._next_key()
            if key is None:
                self._slots.release()
                continue
            deadline = max(self._queues[key][0].enqueued + self._max_delay_s, self._regroup_until(key))
            while key in self._queues and not self._full(key):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take(key)
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(batch), name="warmgate-batch")
            self._running.add(task)
            task.add_done_callback(self._ran)

    def _ran(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            self._crash = task.exception()
        self._wakeup.set()  # the loop re-checks: idle, a crash, or a batch that may form now

    def _regroup_until(self, key: Hashable) -> float:
        """When the key's queue may wait until for batch-mates after the last run (0: no wait)."""
        last = self._last
        # With another instance still running, a free one takes what is queued at once: the
        # backend is busy either way, and waiting for a full batch would run them in turn.
        if not self._regroup or last is None or last.key != key or self._running:
            return 0.0
        rows = sum(p.item.size for p in self._live(key))
        return last.ended + grouping.regroup_wait(rows, last.rows, last.seconds, self.limits)

    async def _run(self, batch: list[_Pending]) -> None:
        items = [p.item for p in batch]
        rows = sum(it.size for it in items)
        self._on_batch(rows)
        started = time.monotonic()
        try:
            outputs = await self._execute(items)
            if len(outputs) != len(batch):
                raise ModelError(f"the model returned {len(outputs)} outputs for a batch of {len(batch)}")
        except Exception as exc:  # the model's error belongs to every request of the batch
            self._last = None
            self._on_outcome(items, exc)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        ended = time.monotonic()
        self._last = _LastRun(items[0].key, rows, ended - started, ended)
        self._on_outcome(items, None)
        for p, out in zip(batch, outputs, strict=True):
            if not p.future.done():
                p.future.set_result(out)
                # One caller resumes (encodes and sends its reply) per loop iteration, with a
                # poll of the sockets between: a /ping that arrives as a batch completes waits
                # for one reply's work, not for the whole batch's.
                await asyncio.sleep(0)


def _expire(future: asyncio.Future[Any], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(
            InferenceTimeout(
                f"inference did not finish within {timeout_s:g}s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
            )
        )
