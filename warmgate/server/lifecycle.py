"""The replica's lifecycle: one enum, one transition table, one ``transition()``.

``STARTING → LOADING → WARMING → READY → DRAINING → STOPPED``, and ``LOADING|WARMING → FAILED``.
After READY, ``READY ⇄ DEGRADED`` (not ready but recoverable: a stalled inference call, repeated
server-side failures) and ``READY|DEGRADED → FAILED`` (unrecoverable: the batcher's loop ended).
Draining may also start before READY (SIGTERM during load), and a failed replica may stop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from warmgate.errors import WarmgateError
from warmgate.phases import Phase

__all__ = ["TRANSITIONS", "IllegalTransition", "Lifecycle", "Phase", "WarmupProgress"]

log = logging.getLogger("warmgate.lifecycle")


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.STARTING: frozenset({Phase.LOADING, Phase.DRAINING}),
    Phase.LOADING: frozenset({Phase.WARMING, Phase.FAILED, Phase.DRAINING}),
    Phase.WARMING: frozenset({Phase.READY, Phase.FAILED, Phase.DRAINING}),
    Phase.READY: frozenset({Phase.DEGRADED, Phase.FAILED, Phase.DRAINING}),
    Phase.DEGRADED: frozenset({Phase.READY, Phase.FAILED, Phase.DRAINING}),
    Phase.DRAINING: frozenset({Phase.STOPPED}),
    Phase.FAILED: frozenset({Phase.STOPPED}),
    Phase.STOPPED: frozenset(),
}


class IllegalTransition(WarmgateError):
    """A move the transition table does not allow (a bug in the caller)."""


@dataclass
class WarmupProgress:
    done: int = 0
    total: int = 0
    current: str = ""

    def to_json(self) -> dict[str, object]:
        return {"done": self.done, "total": self.total, "current": self.current}


@dataclass
class Lifecycle:
    """The replica's current phase, why it is there, and warmup progress."""

    on_change: Callable[[Phase, Phase], None] = lambda old, new: None
    clock: Callable[[], float] = time.monotonic
    phase: Phase = Phase.STARTING
    reason: str = "process started"
    warmup: WarmupProgress = field(default_factory=WarmupProgress)
    _since: float = 0.0

    def __post_init__(self) -> None:
        self._since = self.clock()

    def transition(self, new: Phase, reason: str) -> None:
        old = self.phase
        if new not in TRANSITIONS[old]:
            raise IllegalTransition(f"illegal lifecycle transition {old.value} -> {new.value}")
        now = self.clock()
        log.info(
            "phase %s -> %s after %.3fs: %s",
            old.value,
            new.value,
            now - self._since,
            reason,
            extra={"phase_from": old.value, "phase_to": new.value, "seconds": now - self._since},
        )
        self.phase, self.reason, self._since = new, reason, now
        self.on_change(old, new)

    def can(self, new: Phase) -> bool:
        return new in TRANSITIONS[self.phase]

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def live(self) -> bool:
        """``/livez``: false only when the process should be restarted (FAILED is terminal)."""
        return self.phase is not Phase.FAILED

    @property
    def serving(self) -> bool:
        """Inference requests are accepted while READY and during the drain window; a DEGRADED
        replica refuses them at once (503 + Retry-After) so a load balancer retries elsewhere."""
        return self.phase in (Phase.READY, Phase.DRAINING)

    def to_json(self) -> dict[str, object]:
        return {"phase": self.phase.value, "reason": self.reason, "warmup": self.warmup.to_json()}
