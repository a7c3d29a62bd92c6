"""Keep the model's memory warm from READY to the first request.

On a host whose last-level cache is shared with other tenants (this project's machines: one
480 MiB L3 for the whole host), a model's weights leave the cache within 5–20 ms of idleness,
and any request after a pause runs 1.3–2.4 x its back-to-back time, warm or not
(docs/benchmarks.md, "Time to READY and the first request after it"). A replica that has just
turned READY is idle until its load balancer admits it, so its first request would pay that.

So, from READY until the first request arrives or ``seconds`` have passed, one small item (the
last warmup request: the smallest shape of its media types, sent over HTTP) runs through the
backend every :data:`INTERVAL_S`. Measured: a one-token run every 5 ms kept a raw short
sentence after a 250 ms pause at 1.16 x back to back against 2.43 x (every 20 ms: 1.56 x), and
the first request after READY at 1.13 x the steady p50 against 1.32 x. It costs what it runs:
about half of one core on two (the default model: 99 runs/s), for as long as no request comes,
never after one has.

A warm-pool standby idles for minutes between READY and its claim, long past ``seconds``; its
controller re-arms the keep-warm when it claims it (``POST /warmgate/keep-warm``), so that the
first request the load balancer sends it meets a warm model too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("warmgate.keepwarm")

#: How often the item runs: the cost builds up within 5-20 ms of idleness, so every 5 ms.
INTERVAL_S = 0.005


async def keep_warm(
    run: Callable[[], Awaitable[object]],
    traffic: asyncio.Event,
    seconds: float,
    on_run: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
    serving: Callable[[], bool] = lambda: True,
) -> int:
    """Call ``run`` every :data:`INTERVAL_S` until ``traffic`` is set, ``seconds`` pass or
    ``serving()`` turns false (the replica drains or degrades); return how many runs there
    were. A run that fails ends it (logged): the request path reports its own failures."""
    until = clock() + seconds
    runs = 0
    while not traffic.is_set() and clock() < until and serving():
        try:
            await run()
        except Exception:
            log.exception("keep-warm run failed after %d runs; stopped", runs)
            return runs
        runs += 1
        on_run()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(traffic.wait(), INTERVAL_S)
    ended = "a request" if traffic.is_set() else "time" if clock() >= until else "leaving READY"
    log.info("keep-warm: %d runs, ended by %s", runs, ended)
    return runs
