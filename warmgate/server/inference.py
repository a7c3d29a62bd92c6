"""The inference workers: the threads that run model code (load, hooks, batches).

An executor at a lower CPU priority than the event loop, so that on a small machine a saturated
model never delays ``/ping``: the scheduler runs the loop first when both wait. One worker by
default; a model whose instances run at once gets one worker per instance after load. It keeps a
watchdog clock (when each running call began), which the health monitor reads to tell a stalled
call from a slow one. The batcher hands it batches; nothing else about batching lives here.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import platform
import queue
import struct
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


# sched_setattr(2) by machine; Python's os module has no wrapper for it.
_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
_SCHED_ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr, version 1 (56 bytes)


def set_thread_slice(microseconds: int) -> bool:
    """Linux 6.12 or later: ask the scheduler (EEVDF) for a time slice of ``microseconds`` for
    the calling thread; 0 restores the kernel's default. Its nice level and policy stay.

    A thread with a short slice gets an early deadline each time it wakes, and the thread it
    wakes beside may then run only to the shorter of the two slices before it is preempted
    (the default, about 1.4 ms here, is what a busy niced inference thread could otherwise keep
    the CPU for while ``/ping`` waits). Threads started later inherit it. False where the
    machine or kernel cannot (another OS, another architecture, an error); older kernels accept
    and ignore it."""
    number = _SCHED_SETATTR.get(platform.machine())
    if not sys.platform.startswith("linux") or number is None:
        return False
    tid = threading.get_native_id()
    policy = os.sched_getscheduler(tid)
    if policy not in (os.SCHED_OTHER, os.SCHED_BATCH):
        return False  # SCHED_IDLE and the real-time classes take no fair slice
    nice = os.getpriority(os.PRIO_PROCESS, tid)
    attr = _SCHED_ATTR.pack(_SCHED_ATTR.size, policy, 0, nice, 0, microseconds * 1000, 0, 0, 0, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(attr, _SCHED_ATTR.size)
    return int(libc.syscall(number, 0, buffer, 0)) == 0


def lower_thread_priority(niceness: int = INFERENCE_NICENESS, idle: bool = False, slice_us: int = 0) -> None:
    """Linux: nice only the calling thread, or with ``idle`` put it in the ``SCHED_IDLE``
    class, and with ``slice_us`` give it that CPU time slice (:func:`set_thread_slice`);
    elsewhere leave priorities alone. Threads it starts later (ONNX Runtime's intra-op pool)
    inherit all of it.

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
    if slice_us:
        set_thread_slice(slice_us)


class InferenceWorkers:
    """Runs callables on dedicated threads, one call per thread at a time, and knows how long the
    oldest running call has taken.

    One worker (the default) runs calls one at a time, in order: the model loads on it. After
    load, :meth:`grow` adds workers for a model whose instances run at once (ONNX Runtime on
    CPU: one session, several concurrent ``run`` calls of fewer intra-op threads each); the
    batcher then hands them that many batches at once. The first worker starts them, so each
    inherits its priority and its floating-point environment (POSIX ``pthread_create``): the
    flush-to-zero flags ONNX Runtime sets on the thread that opens a session
    (``session.set_denormal_as_zero``), which a thread started by the event loop lacks.

    The threads are daemons: a call that never returns (a wedged driver) cannot keep the process
    from exiting once the runtime has decided it should (FAILED with ``--exit-on-failure``).
    The first starts on the first call.
    """

    def __init__(
        self,
        niceness: int = INFERENCE_NICENESS,
        clock: Callable[[], float] = time.monotonic,
        idle: bool = False,
        slice_us: int = 0,
    ) -> None:
        self._niceness = niceness
        self._idle = idle
        self._slice_us = slice_us
        self._clock = clock
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # per worker: when its running call began (None: idle); each worker writes only its own
        self._busy_since: list[float | None] = []
        self._closed = False

    @property
    def workers(self) -> int:
        return len(self._threads)

    async def run_now(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args)`` on a worker and wait for its result (or exception).

        A caller cancelled while the call is still queued removes it; one already running
        finishes and its result is discarded.
        """
        if self._closed:
            raise RuntimeError("the inference workers have been shut down")
        if not self._threads:
            self._start_worker(first=True)
        future: Future[T] = Future()
        self._jobs.put((future, functools.partial(fn, *args, **kwargs)))
        return await asyncio.wrap_future(future)

    async def grow(self, workers: int) -> None:
        """Have ``workers`` in all, the new ones started from the first worker (see the class)."""
        if self.workers < workers:
            await self.run_now(self._start_workers, workers)

    def busy_for(self) -> float | None:
        """Seconds the longest-running call has taken so far; None when every worker is idle."""
        since = min((s for s in list(self._busy_since) if s is not None), default=None)
        return None if since is None else self._clock() - since

    def shutdown(self) -> None:
        """Stop after the calls already queued; a running call is never waited on here."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)

    def _start_workers(self, workers: int) -> None:
        """On the first worker: start the others (at most one such call runs: ``grow`` awaits it)."""
        while len(self._threads) < workers:
            self._start_worker(first=False)

    def _start_worker(self, first: bool) -> None:
        index = len(self._threads)
        name = "warmgate-infer" if first else f"warmgate-infer-{index}"
        thread = threading.Thread(target=self._work, args=(index, first), name=name, daemon=True)
        self._busy_since.append(None)
        self._threads.append(thread)
        thread.start()

    def _work(self, index: int, first: bool) -> None:
        if first:  # the others inherit it from the first, which starts them
            lower_thread_priority(self._niceness, self._idle, self._slice_us)
        busy = self._busy_since
        while (job := self._jobs.get()) is not None:
            future, call = job
            if not future.set_running_or_notify_cancel():  # its caller has gone
                continue
            busy[index] = self._clock()
            try:
                result = call()
            except BaseException as exc:  # handed to the caller unchanged, as an executor does
                busy[index] = None  # idle before the caller wakes, never after
                future.set_exception(exc)
            else:
                busy[index] = None
                future.set_result(result)
