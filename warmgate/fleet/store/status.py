"""What ``warmgate pool status`` reports for one pool, and SageMaker's member statuses.

SageMaker Managed Warm Pools report ``Available``, ``InUse``, ``Reused`` and ``Terminated``;
mapped onto our states (plus ``Warming``, which SageMaker does not show):

=============  =====================================================
status         our books
=============  =====================================================
``Warming``    WARMING: launched, its warmup not done
``Available``  READY, never reused
``Reused``     READY again after a claim was released back (:meth:`release`)
``InUse``      CLAIMED
``Terminated`` ended: ERRORED or DRAINING (counted from the history)
=============  =====================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolMode
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import StoredMember

SHORT_ID = 12  # hex digits of the key's SHA-256 shown as its id


class WarmPoolStatus(Enum):
    WARMING = "Warming"
    AVAILABLE = "Available"
    REUSED = "Reused"
    IN_USE = "InUse"
    TERMINATED = "Terminated"


def member_status(member: StoredMember) -> WarmPoolStatus:
    state = member.state
    if state is MemberState.WARMING:
        return WarmPoolStatus.WARMING
    if state is MemberState.READY:
        return WarmPoolStatus.REUSED if member.reuses else WarmPoolStatus.AVAILABLE
    if state is MemberState.CLAIMED:
        return WarmPoolStatus.IN_USE
    return WarmPoolStatus.TERMINATED


@dataclass(frozen=True)
class PoolSettings:
    """One pool's row: its mode and what the operator set. ``keep_alive_ttl_s`` is ``None``
    while the key uses each controller's configured default; ``archived_at`` is set while the
    pool is archived (then its mode is DRAINING)."""

    key: MatchKey
    mode: PoolMode
    keep_alive_ttl_s: float | None
    min_standby: int
    archived_at: float | None

    @property
    def key_id(self) -> str:
        return self.key.digest[:SHORT_ID]

    @property
    def archived(self) -> bool:
        return self.archived_at is not None

    @property
    def label(self) -> str:
        """``active``, ``draining`` or ``archived``."""
        return "archived" if self.archived else self.mode.value

    @property
    def accepting(self) -> bool:
        """Whether it takes new members: active (so not archived either)."""
        return self.mode is PoolMode.ACTIVE and not self.archived

    def ttl(self, default_s: float) -> float:
        return default_s if self.keep_alive_ttl_s is None else self.keep_alive_ttl_s

    def standbys_wanted(self, target: int, config: PoolConfig) -> int:
        """How many standbys a controller keeps for this key: its own ``target``, raised to the
        operator's minimum (``replenish``) and the config's ``min_size``, capped at ``max_size``.
        The store's top-up fills up to it and the fleet's surplus drain keeps it."""
        return min(max(target, config.min_size, self.min_standby), config.max_size)


@dataclass(frozen=True)
class PoolStatus:
    """One pool now: its settings, counts by state and status, standby ages, history sums.

    ``billable_standby_s`` is the time members spent WARMING or READY within the last
    ``window_s`` seconds, members that already ended included; ``Terminated`` (in
    ``statuses``) and ``reuses`` count over the key's whole history.
    """

    settings: PoolSettings
    counts: Mapping[MemberState, int]
    statuses: Mapping[WarmPoolStatus, int]
    oldest_standby_s: float | None
    newest_standby_s: float | None
    billable_standby_s: float
    window_s: float
    reuses: int = 0

    @property
    def key_id(self) -> str:
        return self.settings.key_id

    def to_json(self) -> dict[str, object]:
        s = self.settings
        return {
            "key_id": s.key_id,
            "key_digest": s.key.digest,
            "key": {
                "model_digest": s.key.model_digest,
                "version": s.key.version,
                "device": s.key.device,
                "options": dict(s.key.options),
            },
            "mode": s.label,
            "keep_alive_ttl_s": s.keep_alive_ttl_s,
            "min_standby": s.min_standby,
            "archived_at": s.archived_at,
            "counts": {state.value: n for state, n in self.counts.items()},
            "statuses": {status.value: n for status, n in self.statuses.items()},
            "oldest_standby_age_s": self.oldest_standby_s,
            "newest_standby_age_s": self.newest_standby_s,
            "billable_standby_s": self.billable_standby_s,
            "window_s": self.window_s,
            "reuses": self.reuses,
        }
