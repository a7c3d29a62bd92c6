"""The Python heap at READY: what start-up left behind moves out of the garbage collector's way.

Loading and warmup leave tens of thousands of long-lived objects (modules, the app, the
tokenizer's and the session's wrappers). Every full (generation 2) collection walks them all;
under load that is a 20–40 ms pause of the event loop a few times a minute, which every request
and ``/ping`` in flight then waits out. At READY, :func:`freeze_startup_heap` collects once
(so start-up's garbage is freed, not kept) and then freezes what is left (``gc.freeze``): the
collector ignores those objects from then on, and a full collection walks only what traffic
allocated. Measured under 32 clients (MiniLM): the longest full collection fell from 22–27 ms
to about 1 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect, then freeze every surviving object; return how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
