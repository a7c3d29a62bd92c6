"""Dynamic batching on one dedicated inference thread.

Requests are grouped by ``Item.key`` (their shape bucket). A batch closes when it reaches
``max_rows`` or when its oldest request has waited ``max_delay_s``; while the inference thread is
busy, new requests accumulate, so batches grow with load. The event loop never runs inference.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from warmgate.errors import InferenceTimeout
from warmgate.models.base import Item

InferFn = Callable[[Sequence[Item]], list[Any]]

# The inference thread runs at a lower CPU priority than the event loop, so that on a small
# machine a saturated model never delays /ping: the scheduler runs the loop first when both wait.
INFERENCE_NICENESS = 10


def _lower_thread_priority() -> None:
    """Linux: nice only the calling (inference) thread; elsewhere leave priorities alone."""
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + INFERENCE_NICENESS)


@dataclass
class _Pending:
    item: Item
    future: asyncio.Future[Any]
    enqueued: float


class Batcher:
    def __init__(
        self,
        infer: InferFn,
        max_rows: int,
        max_delay_s: float,
        on_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._infer = infer
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._on_batch = on_batch
        self._queues: dict[Hashable, deque[_Pending]] = {}
        self._executor = ThreadPoolExecutor(
            1, thread_name_prefix="warmgate-infer", initializer=_lower_thread_priority
        )
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.busy_since: float | None = None

    # --- public -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="warmgate-batcher")

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
        # asyncio.wait, not wait_for: wait_for (3.11) can swallow a cancellation that races with
        # the result, and a cancelled caller must always drop its queued work.
        try:
            done, _ = await asyncio.wait({pending.future}, timeout=timeout_s)
        except asyncio.CancelledError:
            pending.future.cancel()
            raise
        if not done:
            pending.future.cancel()
            raise InferenceTimeout(
                f"inference did not finish within {timeout_s:g}s (SAGEMAKER_MODEL_SERVER_TIMEOUT)"
            )
        return pending.future.result()

    async def run_now(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the inference thread (load, warmup hooks) and wait for it."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def wedged(self, limit_s: float) -> bool:
        busy = self.busy_since
        return busy is not None and time.monotonic() - busy > limit_s

    async def drain(self) -> None:
        """Wait until every queued request has been served, then stop."""
        await self._idle.wait()
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=True)

    # --- internals ----------------------------------------------------------------------------

    def _oldest(self) -> _Pending | None:
        heads = [q[0] for q in self._queues.values() if q]
        return min(heads, key=lambda p: p.enqueued) if heads else None

    def _rows(self, key: Hashable) -> int:
        return sum(p.item.size for p in self._queues.get(key, ()) if not p.future.done())

    def _take(self, key: Hashable) -> list[_Pending]:
        queue, rows = self._queues[key], 0
        batch: list[_Pending] = []
        while queue:
            head = queue[0]
            if head.future.done():  # timed out or cancelled while queued
                queue.popleft()
                continue
            if batch and rows + head.item.size > self._max_rows:
                break
            batch.append(queue.popleft())
            rows += head.item.size
        if not queue:
            del self._queues[key]
        return batch

    def _run(self, items: Sequence[Item]) -> list[Any]:
        self.busy_since = time.monotonic()
        try:
            return self._infer(items)
        finally:
            self.busy_since = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            oldest = self._oldest()
            if oldest is None:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            key = oldest.item.key
            deadline = oldest.enqueued + self._max_delay_s
            while self._rows(key) < self._max_rows:
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
                continue
            self._on_batch(sum(p.item.size for p in batch))
            try:
                outputs = await loop.run_in_executor(self._executor, self._run, [p.item for p in batch])
            except Exception as exc:  # the model's error belongs to every request of the batch
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, out in zip(batch, outputs, strict=True):
                if not p.future.done():
                    p.future.set_result(out)
