"""The one interface every pool store implements (SQLite embedded, PostgreSQL shared).

A store keeps the warm pool's books where several controllers can reach them. The rules are
the pure pool's (:mod:`warmgate.autoscaling.pool`): members move ``WARMING → READY → CLAIMED``,
``ERRORED`` and ``DRAINING`` are terminal, the reaper errors stragglers and recycles stale
members. What a store adds:

- **match keys**: every member is registered with a :class:`MatchKey`; :meth:`PoolStore.claim`
  hands out only a READY member with exactly that key, so a stale standby is never promoted;
- **leases**: a controller calls :meth:`~PoolStore.join`, renews its lease with
  :meth:`~PoolStore.heartbeat`, and may register or claim only while it is live; the reaper
  errors the standbys of a controller whose lease expired;
- **atomicity across processes**: every operation is one transaction, and concurrent claims
  never hand out one member twice.

Every method takes ``now``: seconds on one clock that all controllers of a store share
(wall-clock time when they run on several hosts). Nothing inside reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import Lease, StoredMember, StoreReapReport


class PoolStore(Protocol):
    """The warm pool's books, shared by every controller that opens the same store."""

    @property
    def config(self) -> PoolConfig:
        """Sizes, keep-alive TTL, maximum age and warm timeout (the pure pool's config)."""
        ...

    # -- controllers ---------------------------------------------------------------------
    def join(self, name: str, now: float) -> Lease:
        """Start a lease for a new controller; its id is ``name`` plus a unique suffix."""
        ...

    def heartbeat(self, controller_id: str, now: float) -> Lease:
        """Renew a live lease; raise :class:`LeaseExpired` if it lapsed."""
        ...

    def leave(self, controller_id: str) -> tuple[StoredMember, ...]:
        """End a lease and delete every member the controller owns; return them (as they
        stood) so the caller stops their processes. For a clean shutdown."""
        ...

    # -- members -------------------------------------------------------------------------
    def register(self, member_id: str, key: MatchKey, controller_id: str, now: float) -> StoredMember:
        """Book a new WARMING member (its process is being started by ``controller_id``)."""
        ...

    def top_up(
        self, key: MatchKey, target: int, controller_id: str, now: float, *, own: bool = False
    ) -> tuple[str, ...]:
        """Atomically register as many WARMING members as the key's standbys (WARMING +
        READY) fall short of ``target`` (clamped to the config's min/max); return their ids
        for the caller to launch. Two controllers topping up at once never overshoot.
        ``own``: count only the standbys ``controller_id`` registered (a per-controller pool)."""
        ...

    def mark_ready(self, member_id: str, now: float) -> StoredMember: ...

    def mark_errored(self, member_id: str, reason: str) -> StoredMember: ...

    def mark_draining(self, member_id: str, reason: str) -> StoredMember:
        """A member leaves: a claimed one finished serving, or a standby is retired."""
        ...

    def claim(self, key: MatchKey, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        """Atomically hand the oldest READY member with exactly ``key`` to ``controller_id``;
        raise :class:`~warmgate.autoscaling.pool.PoolEmpty` at once when there is none.
        ``own``: only a member ``controller_id`` registered (a controller that can promote
        only the processes it runs, like the local fleet)."""
        ...

    def reap(self, controller_id: str, now: float) -> StoreReapReport:
        """Expire lapsed leases (their standbys error, their claims drain), apply the pool's
        expiry rule to every member, and delete the terminal members this controller may
        stop (its own, and orphans)."""
        ...

    # -- pools ---------------------------------------------------------------------------
    def drain(self, key: MatchKey) -> tuple[str, ...]:
        """Stop replenishing ``key``; its WARMING and READY members drain. Return their ids."""
        ...

    def activate(self, key: MatchKey) -> None:
        """Let ``key`` take members again after a drain."""
        ...

    # -- reading -------------------------------------------------------------------------
    def get(self, member_id: str) -> StoredMember: ...

    def members(self, key: MatchKey | None = None) -> tuple[StoredMember, ...]: ...

    def counts(self, key: MatchKey) -> Mapping[MemberState, int]:
        """How many members with ``key`` are in each state (every state present)."""
        ...

    def close(self) -> None: ...
