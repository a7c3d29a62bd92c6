"""The pool's books in SQL: one implementation of :class:`PoolStore` over a DB-API connection.

The SQLite and PostgreSQL stores differ only in how a transaction starts and how rows are
locked (a :class:`~warmgate.fleet.store.tx.Dialect`); every rule is the pure pool's
(:func:`check_move`, :func:`expiry`, :func:`reuse_refusal`), applied in Python to rows read
inside the transaction that writes them, and every move is recorded in the history
(:mod:`.history`) by that same transaction. The operator's pool controls live in
:class:`~warmgate.fleet.store.sql_pools.SqlPools`, which this class extends.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence

from warmgate.autoscaling.pool import (
    IllegalTransition,
    Member,
    MemberState,
    PoolConfig,
    PoolEmpty,
    UnknownMember,
    expiry,
    reuse_refusal,
)
from warmgate.fleet.store.history import PoolEvent, record
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import (
    DuplicateMember,
    Lease,
    LeaseExpired,
    PoolArchived,
    PoolDraining,
    StoredMember,
    StoreReapReport,
)
from warmgate.fleet.store.sql_pools import SqlPools
from warmgate.fleet.store.tx import COLUMNS, LIVE, STANDBY, TERMINAL, Dialect, Tx, marks, stored

__all__ = ["Dialect", "SqlPoolStore"]


class SqlPoolStore(SqlPools):
    """:class:`~warmgate.fleet.store.protocol.PoolStore` over SQL; subclasses open the
    connection and start transactions. One store object is safe to share between threads
    (a lock serialises its connection); each controller process opens its own."""

    def __init__(
        self,
        config: PoolConfig,
        dialect: Dialect,
        *,
        lease_ttl_s: float = 30.0,
        id_prefix: str = "standby",
    ) -> None:
        super().__init__(config, dialect, lease_ttl_s=lease_ttl_s)
        self._id_prefix = id_prefix

    # -- controllers ---------------------------------------------------------------------
    def join(self, name: str, now: float) -> Lease:
        lease = Lease(f"{name}-{uuid.uuid4().hex[:10]}", now + self._lease_ttl_s)
        with self._tx() as tx:
            tx.run(
                "INSERT INTO warmgate_pool_leases (controller_id, expires_at) VALUES (?, ?)",
                (lease.controller_id, lease.expires_at),
            )
        return lease

    def heartbeat(self, controller_id: str, now: float) -> Lease:
        lease = Lease(controller_id, now + self._lease_ttl_s)
        with self._tx() as tx:
            renewed = tx.run(
                "UPDATE warmgate_pool_leases SET expires_at = ? WHERE controller_id = ? AND expires_at > ?",
                (lease.expires_at, controller_id, now),
            )
            if not renewed:
                self._lease_gone(tx, controller_id, now)
        return lease

    def leave(self, controller_id: str, *, now: float | None = None) -> tuple[StoredMember, ...]:
        with self._tx() as tx:
            owned = [
                stored(row)
                for row in tx.rows(
                    f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE owner = ? "
                    f"ORDER BY member_id{self._dialect.for_update}",
                    (controller_id,),
                )
            ]
            for member in owned:
                if member.state.value in LIVE:
                    self._record(tx, member, PoolEvent.DRAINING, now, "its controller left")
                self._record(tx, member, PoolEvent.REMOVED, now, "its controller left")
            tx.run("DELETE FROM warmgate_pool_members WHERE owner = ?", (controller_id,))
            tx.run("DELETE FROM warmgate_pool_leases WHERE controller_id = ?", (controller_id,))
        return tuple(owned)

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
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            pool = self._pool(tx, key, self._dialect.for_share)
            if pool.archived:
                raise PoolArchived(f"the pool for {key} is archived; activate it before registering")
            if not pool.accepting:
                raise PoolDraining(f"the pool for {key} is draining; activate it before registering")
            if tx.rows("SELECT 1 FROM warmgate_pool_members WHERE member_id = ?", (member_id,)):
                raise DuplicateMember(f"pool member {member_id!r} is already registered")
            return self._insert(tx, member_id, key, controller_id, now, launched_at)

    def top_up(
        self, key: MatchKey, target: int, controller_id: str, now: float, *, own: bool = False
    ) -> tuple[str, ...]:
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            pool = self._pool(tx, key, self._dialect.for_update)
            if not pool.accepting or pool.ttl(self._config.keep_alive_ttl_s) <= 0:
                return ()
            want = pool.standbys_wanted(target, self._config)
            standby = self._count(tx, key, STANDBY, owner=controller_id if own else None)
            started = [f"{self._id_prefix}-{uuid.uuid4().hex[:12]}" for _ in range(want - standby)]
            for member_id in started:
                self._insert(tx, member_id, key, controller_id, now)
        return tuple(started)

    def mark_ready(self, member_id: str, now: float) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.READY, now, ready_at=now)

    def mark_errored(self, member_id: str, reason: str, *, now: float | None = None) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.ERRORED, now, reason=reason)

    def mark_draining(self, member_id: str, reason: str, *, now: float | None = None) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.DRAINING, now, reason=reason)

    def claim(self, key: MatchKey, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        mine = " AND owner = ?" if own else ""
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            rows = tx.rows(
                f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE match_key = ? AND state = ?{mine} "
                f"ORDER BY ready_at, member_id LIMIT 1{self._dialect.skip_locked}",
                (key.digest, MemberState.READY.value, *((controller_id,) if own else ())),
            )
            if not rows:
                raise PoolEmpty(self._empty_reason(tx, key))
            return self._move(
                tx, stored(rows[0]), MemberState.CLAIMED, now, claimed_at=now, owner=controller_id
            )

    def release(self, member_id: str, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        """Its claimer scaled the member's replica in: back to READY when the pool may reuse it
        (keep-alive renewed, reuse counted), else DRAINING with the reason (see
        :func:`~warmgate.autoscaling.pool.reuse_refusal`). ``own``: count only the caller's
        standbys against ``max_size``."""
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            found = tx.rows("SELECT match_json FROM warmgate_pool_members WHERE member_id = ?", (member_id,))
            if not found:
                raise UnknownMember(f"no pool member {member_id!r} (already removed?)")
            # The pool row first, then the member: the lock order of drain and recycle.
            pool = self._pool(tx, MatchKey.from_json(found[0][0]), self._dialect.for_update)
            member = self._locked(tx, member_id)
            if member.state is MemberState.CLAIMED and member.owner != controller_id:
                raise IllegalTransition(
                    f"pool member {member_id!r} is claimed by {member.owner}, not {controller_id}: "
                    "only its claimer releases it"
                )
            standby = self._count(tx, member.key, STANDBY, owner=controller_id if own else None)
            refusal = reuse_refusal(
                member.member,
                self._config,
                now,
                keep_alive_ttl_s=pool.ttl(self._config.keep_alive_ttl_s),
                accepting=pool.accepting,
                standby=standby,
            )
            if refusal is not None:
                return self._move(tx, member, MemberState.DRAINING, now, reason=refusal)
            tx.run(
                "UPDATE warmgate_pool_members SET state = ?, ready_at = ?, claimed_at = NULL, "
                "reuses = reuses + 1, reason = ? WHERE member_id = ?",
                (MemberState.READY.value, now, "reused", member_id),
            )
            self._record(tx, member, PoolEvent.REUSED, now, "released by its claimer", controller_id)
            reused = dataclasses.replace(
                member.member, state=MemberState.READY, ready_at=now, claimed_at=None, reason="reused"
            )
            return dataclasses.replace(member, member=reused, reuses=member.reuses + 1)

    def reap(self, controller_id: str, now: float) -> StoreReapReport:
        errored: list[str] = []
        recycled: list[str] = []
        with self._tx() as tx:
            if self._dialect.serialize_reap:
                tx.rows(self._dialect.serialize_reap)
            expired = [
                row[0]
                for row in tx.rows(
                    "SELECT controller_id FROM warmgate_pool_leases WHERE expires_at <= ? "
                    f"ORDER BY controller_id{self._dialect.for_update}",
                    (now,),
                )
            ]
            ttls = self._ttls(tx)
            # Read without locks, then lock only the members that move (and judge them again
            # as locked): a reap never holds the rows of healthy members, so claims running
            # beside it on PostgreSQL do not skip them.
            live = tx.rows(
                f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE state IN ({marks(LIVE)})", LIVE
            )
            moving = sorted(
                m.member_id
                for m in map(stored, live)
                if self._verdict(m, expired, ttls.get(m.key.digest), now) is not None
            )
            locked = (
                tx.rows(
                    f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE member_id IN ({marks(moving)}) "
                    f"AND state IN ({marks(LIVE)}) ORDER BY member_id{self._dialect.for_update}",
                    (*moving, *LIVE),
                )
                if moving
                else []
            )
            for member in map(stored, locked):
                verdict = self._verdict(member, expired, ttls.get(member.key.digest), now)
                if verdict is not None:
                    state, reason = verdict
                    self._move(tx, member, state, now, reason=reason, by=controller_id)
                    (errored if state is MemberState.ERRORED else recycled).append(member.member_id)
            if expired:
                tx.run(
                    f"DELETE FROM warmgate_pool_leases WHERE controller_id IN ({marks(expired)})",
                    expired,
                )
            removable = (
                f"FROM warmgate_pool_members WHERE state IN ({marks(TERMINAL)}) AND (owner = ? "
                "OR owner NOT IN (SELECT controller_id FROM warmgate_pool_leases))"
            )
            removed = tuple(
                stored(row)
                for row in tx.rows(
                    f"SELECT {COLUMNS} {removable} ORDER BY member_id", (*TERMINAL, controller_id)
                )
            )
            for member in removed:
                self._record(tx, member, PoolEvent.REMOVED, now, "reaped", controller_id)
            tx.run(f"DELETE {removable}", (*TERMINAL, controller_id))
        return StoreReapReport(tuple(errored), tuple(recycled), removed, tuple(expired))

    # -- inside a transaction ------------------------------------------------------------
    def _verdict(
        self, member: StoredMember, expired: Sequence[str], ttl: float | None, now: float
    ) -> tuple[MemberState, str] | None:
        if member.owner in expired:
            reason = f"controller {member.owner}'s lease expired"
            if member.state is MemberState.CLAIMED:
                return MemberState.DRAINING, reason
            return MemberState.ERRORED, reason
        return expiry(member.member, self._config, now, keep_alive_ttl_s=ttl)

    def _ttls(self, tx: Tx) -> dict[str, float]:
        """The keys whose keep-alive TTL an operator set (the others use the config's)."""
        rows = tx.rows(
            "SELECT match_key, keep_alive_ttl_s FROM warmgate_pools WHERE keep_alive_ttl_s IS NOT NULL"
        )
        return {digest: float(ttl) for digest, ttl in rows}

    def _require_lease(self, tx: Tx, controller_id: str, now: float) -> None:
        rows = tx.rows(
            f"SELECT expires_at FROM warmgate_pool_leases WHERE controller_id = ?{self._dialect.for_share}",
            (controller_id,),
        )
        if not rows or float(rows[0][0]) <= now:
            self._lease_gone(tx, controller_id, now)

    def _lease_gone(self, tx: Tx, controller_id: str, now: float) -> None:
        rows = tx.rows(
            "SELECT expires_at FROM warmgate_pool_leases WHERE controller_id = ?", (controller_id,)
        )
        when = f"expired at {float(rows[0][0])} (now {now})" if rows else "is unknown or was reaped"
        raise LeaseExpired(
            f"controller {controller_id!r}: its lease {when}; stop its replicas and join again"
        )

    def _insert(
        self, tx: Tx, member_id: str, key: MatchKey, owner: str, now: float, launched_at: float | None = None
    ) -> StoredMember:
        created = now if launched_at is None else launched_at
        tx.run(
            f"INSERT INTO warmgate_pool_members (match_key, {COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, '', 0)",
            (key.digest, member_id, key.canonical(), MemberState.WARMING.value, owner, created),
        )
        record(tx, member_id, key.digest, owner, PoolEvent.REGISTERED, now)
        return StoredMember(Member(member_id, MemberState.WARMING, created_at=created), key, owner)

    def _empty_reason(self, tx: Tx, key: MatchKey) -> str:
        counts = self._counts(tx, key)
        others = tx.rows(
            "SELECT count(*) FROM warmgate_pool_members WHERE match_key <> ? AND state = ?",
            (key.digest, MemberState.READY.value),
        )
        archived = tx.rows(
            "SELECT 1 FROM warmgate_pools WHERE match_key = ? AND archived_at IS NOT NULL", (key.digest,)
        )
        stale = int(others[0][0])
        return (
            f"warm pool has no READY member for {key} ({counts[MemberState.WARMING]} warming"
            + ("; the pool is archived" if archived else "")
            + "); "
            + (f"{stale} READY member(s) with other keys never match; " if stale else "")
            + "cold-start a replica instead"
        )
