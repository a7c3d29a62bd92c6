"""The inference thread: the one thread that runs model code (load, hooks, batches).

It is a single-worker executor at a lower CPU priority than the event loop, so that on a small
machine a saturated model never delays ``/ping``: the scheduler runs the loop first when both
wait. It keeps a watchdog clock (when the running call began), which the health monitor reads to
tell a stalled call from a slow one. The batcher hands it batches; nothing else about batching
lives here.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, ParamSpec, TypeVar

# How much lower the inference thread's priority is than the event loop's (a nice increment).
INFERENCE_NICENESS = 19

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple["Future[Any]", Callable[[], Any]]


def lower_thread_priority(niceness: int = INFERENCE_NICENESS, idle: bool = False) -> None:
    """Linux: nice only the calling thread, or with ``idle`` put it in the ``SCHED_IDLE``
    class; elsewhere leave priorities alone. Threads it starts later (ONNX Runtime's intra-op
    pool) inherit either.

    ``SCHED_IDLE``: the kernel preempts such a thread as soon as any normal thread wakes (the
    event loop with a request or a ``/ping``); a niced thread may first run out its slice
    (EEVDF's run-to-parity), a few milliseconds. The cost: any other busy process on the same
    cores (not only our event loop) goes first."""
    if not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    if idle:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    elif niceness:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)


class InferenceThread:
    """Runs callables one at a time, in order, on one dedicated thread, and knows how long the
    current one has run.

    The thread is a daemon: a call that never returns (a wedged driver) cannot keep the process
    from exiting once the runtime has decided it should (FAILED with ``--exit-on-failure``).
    It starts on the first call.
    """

    def __init__(
        self,
        niceness: int = INFERENCE_NICENESS,
        clock: Callable[[], float] = time.monotonic,
        idle: bool = False,
    ) -> None:
        self._niceness = niceness
        self._idle = idle
        self._clock = clock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy_since: float | None = None
        self._closed = False

    async def run_now(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args)`` on the inference thread and wait for its result (or exception).

        A caller cancelled while the call is still queued removes it; one already running
        finishes and its result is discarded.
        """
        if self._closed:
            raise RuntimeError("the inference thread has been shut down")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="warmgate-infer", daemon=True)
            self._thread.start()
        future: Future[T] = Future()
        self._jobs.put((future, functools.partial(fn, *args, **kwargs)))
        return await asyncio.wrap_future(future)

    def busy_for(self) -> float | None:
        """Seconds the running call has taken so far; None when the thread is idle."""
        since = self._busy_since
        return None if since is None else self._clock() - since

    def shutdown(self) -> None:
        """Stop after the calls already queued; a running call is never waited on here."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)

    def _work(self) -> None:
        lower_thread_priority(self._niceness, self._idle)
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():  # its caller has gone
                continue
            self._busy_since = self._clock()
            try:
                result = call()
            except BaseException as exc:  # handed to the caller unchanged, as an executor does
                self._busy_since = None  # idle before the caller wakes, never after
                future.set_exception(exc)
            else:
                self._busy_since = None
                future.set_result(result)
