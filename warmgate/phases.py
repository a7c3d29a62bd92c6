"""The replica's lifecycle words: the one list both sides agree on.

The server reports them (``/ping`` and ``/readyz`` bodies, the ``warmgate_phase`` metric's label)
and the fleet and autoscaling read them back over HTTP. This module imports nothing of ours.

Only ``READY`` takes traffic from a load balancer. ``DEGRADED`` is the recoverable not-ready state
after READY (a stalled inference call, repeated server-side failures); ``FAILED`` is terminal.
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    STARTING = "starting"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    DEGRADED = "degraded"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"
