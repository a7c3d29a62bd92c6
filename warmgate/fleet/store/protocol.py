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
  never hand out one member twice;
- **keep-alive and reuse**: a TTL per key, changeable at runtime; :meth:`PoolStore.release`
  returns a scaled-in member to READY when the pool may reuse it (renewing its keep-alive);
- **history**: every move is recorded (:meth:`PoolStore.events`), for status and audits;
- **operator controls**: minimum standbys, recycle, drain, archive, delete, status.

Every method takes ``now``: seconds on one clock that all controllers of a store share
(wall-clock time when they run on several hosts). Nothing inside reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.store.history import EventRecord
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import Lease, StoredMember, StoreReapReport
from warmgate.fleet.store.status import PoolSettings, PoolStatus


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

    def leave(self, controller_id: str, *, now: float | None = None) -> tuple[StoredMember, ...]:
        """End a lease and delete every member the controller owns; return them (as they
        stood) so the caller stops their processes. For a clean shutdown."""
        ...

    # -- members -------------------------------------------------------------------------
    def register(
        self,
        member_id: str,
        key: MatchKey,
        controller_id: str,
        now: float,
        *,
        launched_at: float | None = None,
    ) -> StoredMember:
        """Book a new WARMING member (its process is being started by ``controller_id``);
        ``launched_at`` (default ``now``) is its ``created_at``: an adopted replica's launch."""
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

    def mark_errored(self, member_id: str, reason: str, *, now: float | None = None) -> StoredMember:
        """``now``, when given, times the move in the history (else its removal does)."""
        ...

    def mark_draining(self, member_id: str, reason: str, *, now: float | None = None) -> StoredMember:
        """A member leaves: a claimed one finished serving, or a standby is retired."""
        ...

    def claim(self, key: MatchKey, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        """Atomically hand the oldest READY member with exactly ``key`` to ``controller_id``;
        raise :class:`~warmgate.autoscaling.pool.PoolEmpty` at once when there is none.
        ``own``: only a member ``controller_id`` registered (a controller that can promote
        only the processes it runs, like the local fleet)."""
        ...

    def release(self, member_id: str, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        """The claimer scaled the member's replica in: READY again (keep-alive renewed, one
        more reuse) when its pool is active, its TTL above 0, it is under the maximum age
        and the key's standbys are under ``max_size``; else DRAINING, with the reason."""
        ...

    def reap(self, controller_id: str, now: float) -> StoreReapReport:
        """Expire lapsed leases (their standbys error, their claims drain), apply the pool's
        expiry rule to every member, and delete the terminal members this controller may
        stop (its own, and orphans)."""
        ...

    # -- pools ---------------------------------------------------------------------------
    def drain(self, key: MatchKey, *, now: float | None = None) -> tuple[str, ...]:
        """Stop replenishing ``key``; its WARMING and READY members drain. Return their ids."""
        ...

    def activate(self, key: MatchKey) -> None:
        """Let ``key`` take members again after a drain (or an archive)."""
        ...

    def recycle(self, key: MatchKey, now: float) -> tuple[str, ...]:
        """Retire the key's READY standbys (reason ``recycled``); top-ups replace them."""
        ...

    def set_keep_alive(self, key: MatchKey, ttl_s: float | None) -> None:
        """The key's keep-alive TTL (``None``: the controllers' default); 0 ends its
        standbys at the next reap and stops reuse and top-ups."""
        ...

    def replenish(self, key: MatchKey, min_standby: int) -> None:
        """Top-ups keep at least ``min_standby`` standbys of ``key`` (up to ``max_size``)."""
        ...

    def archive(self, key: MatchKey, now: float) -> None:
        """Hide a drained, empty pool; it refuses claims and top-ups until activated."""
        ...

    def delete(self, key: MatchKey) -> None:
        """Remove a pool with no members (and its history); else :class:`PoolNotEmpty`."""
        ...

    def migrate(self) -> tuple[int, ...]:
        """Apply pending schema migrations; return the versions this store object applied
        (when it was opened, or now)."""
        ...

    def schema_version(self) -> int:
        """The highest schema migration applied to the store."""
        ...

    # -- reading -------------------------------------------------------------------------
    def get(self, member_id: str) -> StoredMember: ...

    def members(self, key: MatchKey | None = None) -> tuple[StoredMember, ...]: ...

    def counts(self, key: MatchKey) -> Mapping[MemberState, int]:
        """How many members with ``key`` are in each state (every state present)."""
        ...

    def pools(self) -> tuple[PoolSettings, ...]:
        """Every pool on the books (archived ones included)."""
        ...

    def resolve_key(self, key_id: str) -> MatchKey:
        """The one pool's key whose id (SHA-256) starts with ``key_id``."""
        ...

    def events(self, key: MatchKey | None = None) -> tuple[EventRecord, ...]:
        """The recorded history, oldest first."""
        ...

    def status(
        self, now: float, window_s: float = 3600.0, key: MatchKey | None = None
    ) -> tuple[PoolStatus, ...]:
        """Per pool: counts by state and status, standby ages, billable standby seconds."""
        ...

    def close(self) -> None: ...
