"""The pool's books in SQL: one implementation of :class:`PoolStore` over a DB-API connection.

The SQLite and PostgreSQL stores differ only in how a transaction starts and how rows are
locked (a :class:`Dialect`); every rule is the pure pool's (:func:`check_move`,
:func:`expiry`), applied in Python to rows read inside the transaction that writes them.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from warmgate.autoscaling.pool import (
    Member,
    MemberState,
    PoolConfig,
    PoolEmpty,
    PoolMode,
    UnknownMember,
    check_move,
    expiry,
)
from warmgate.errors import ConfigError
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import (
    DuplicateMember,
    Lease,
    LeaseExpired,
    PoolDraining,
    StoredMember,
    StoreReapReport,
)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS warmgate_pools (
        match_key TEXT PRIMARY KEY,
        match_json TEXT NOT NULL,
        mode TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS warmgate_pool_members (
        member_id TEXT PRIMARY KEY,
        match_key TEXT NOT NULL REFERENCES warmgate_pools (match_key),
        match_json TEXT NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        ready_at DOUBLE PRECISION,
        claimed_at DOUBLE PRECISION,
        reason TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS warmgate_pool_members_by_key
        ON warmgate_pool_members (match_key, state, ready_at)""",
    """CREATE TABLE IF NOT EXISTS warmgate_pool_leases (
        controller_id TEXT PRIMARY KEY,
        expires_at DOUBLE PRECISION NOT NULL)""",
)

_COLUMNS = "member_id, match_json, state, owner, created_at, ready_at, claimed_at, reason"
_STANDBY = (MemberState.WARMING.value, MemberState.READY.value)
_LIVE = (*_STANDBY, MemberState.CLAIMED.value)
_TERMINAL = (MemberState.ERRORED.value, MemberState.DRAINING.value)


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL engines: placeholders and row locks."""

    placeholder: str  # the driver's parameter marker, written "?" in our SQL
    for_update: str = ""  # suffix locking the selected rows
    for_share: str = ""  # suffix share-locking them
    skip_locked: str = ""  # suffix locking them, skipping rows other transactions hold
    serialize_reap: str = ""  # statement run first in a reap so two reapers take turns


class Tx:
    """One transaction's cursor, speaking our SQL (``?`` markers) to the driver."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(sql.replace("?", self._dialect.placeholder), tuple(params))
        if self._cursor.description is None:
            return []
        return [tuple(row) for row in self._cursor.fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> int:
        self._cursor.execute(sql.replace("?", self._dialect.placeholder), tuple(params))
        return int(self._cursor.rowcount)


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _stored(row: tuple[Any, ...]) -> StoredMember:
    member_id, match_json, state, owner, created_at, ready_at, claimed_at, reason = row
    member = Member(
        member_id,
        MemberState(state),
        created_at=float(created_at),
        ready_at=None if ready_at is None else float(ready_at),
        claimed_at=None if claimed_at is None else float(claimed_at),
        reason=reason,
    )
    return StoredMember(member, MatchKey.from_json(match_json), owner)


class SqlPoolStore(ABC):
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
        if lease_ttl_s <= 0:
            raise ConfigError(f"lease_ttl_s must be > 0 seconds, got {lease_ttl_s}")
        self._config = config
        self._dialect = dialect
        self._lease_ttl_s = lease_ttl_s
        self._id_prefix = id_prefix
        self._lock = threading.Lock()

    @abstractmethod
    def _begin(self) -> AbstractContextManager[Any]:
        """A context that runs one write transaction and yields a DB-API cursor."""

    @property
    def config(self) -> PoolConfig:
        return self._config

    @property
    def lease_ttl_s(self) -> float:
        return self._lease_ttl_s

    @contextmanager
    def _tx(self) -> Iterator[Tx]:
        with self._lock, self._begin() as cursor:
            yield Tx(cursor, self._dialect)

    def _create_schema(self, prelude: str = "") -> None:
        with self._tx() as tx:
            if prelude:
                tx.rows(prelude)
            for statement in SCHEMA:
                tx.run(statement)

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

    def leave(self, controller_id: str) -> tuple[StoredMember, ...]:
        with self._tx() as tx:
            owned = [
                _stored(row)
                for row in tx.rows(
                    f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE owner = ? "
                    f"ORDER BY member_id{self._dialect.for_update}",
                    (controller_id,),
                )
            ]
            tx.run("DELETE FROM warmgate_pool_members WHERE owner = ?", (controller_id,))
            tx.run("DELETE FROM warmgate_pool_leases WHERE controller_id = ?", (controller_id,))
        return tuple(owned)

    # -- members -------------------------------------------------------------------------
    def register(self, member_id: str, key: MatchKey, controller_id: str, now: float) -> StoredMember:
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            if self._pool_mode(tx, key, self._dialect.for_share) is PoolMode.DRAINING:
                raise PoolDraining(f"the pool for {key} is draining; activate it before registering")
            if tx.rows("SELECT 1 FROM warmgate_pool_members WHERE member_id = ?", (member_id,)):
                raise DuplicateMember(f"pool member {member_id!r} is already registered")
            return self._insert(tx, member_id, key, controller_id, now)

    def top_up(
        self, key: MatchKey, target: int, controller_id: str, now: float, *, own: bool = False
    ) -> tuple[str, ...]:
        want = min(max(target, self._config.min_size), self._config.max_size)
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            if self._pool_mode(tx, key, self._dialect.for_update) is PoolMode.DRAINING:
                return ()
            standby = self._count(tx, key, _STANDBY, owner=controller_id if own else None)
            started = [f"{self._id_prefix}-{uuid.uuid4().hex[:12]}" for _ in range(want - standby)]
            for member_id in started:
                self._insert(tx, member_id, key, controller_id, now)
        return tuple(started)

    def mark_ready(self, member_id: str, now: float) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.READY, ready_at=now)

    def mark_errored(self, member_id: str, reason: str) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.ERRORED, reason=reason)

    def mark_draining(self, member_id: str, reason: str) -> StoredMember:
        with self._tx() as tx:
            return self._move(tx, self._locked(tx, member_id), MemberState.DRAINING, reason=reason)

    def claim(self, key: MatchKey, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        mine = " AND owner = ?" if own else ""
        with self._tx() as tx:
            self._require_lease(tx, controller_id, now)
            rows = tx.rows(
                f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE match_key = ? AND state = ?{mine} "
                f"ORDER BY ready_at, member_id LIMIT 1{self._dialect.skip_locked}",
                (key.digest, MemberState.READY.value, *((controller_id,) if own else ())),
            )
            if not rows:
                raise PoolEmpty(self._empty_reason(tx, key))
            return self._move(tx, _stored(rows[0]), MemberState.CLAIMED, claimed_at=now, owner=controller_id)

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
            live = tx.rows(
                f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE state IN ({_marks(_LIVE)}) "
                f"ORDER BY member_id{self._dialect.for_update}",
                _LIVE,
            )
            for stored in map(_stored, live):
                verdict = self._verdict(stored, expired, now)
                if verdict is not None:
                    state, reason = verdict
                    self._move(tx, stored, state, reason=reason)
                    (errored if state is MemberState.ERRORED else recycled).append(stored.member_id)
            if expired:
                tx.run(
                    f"DELETE FROM warmgate_pool_leases WHERE controller_id IN ({_marks(expired)})",
                    expired,
                )
            removable = (
                f"FROM warmgate_pool_members WHERE state IN ({_marks(_TERMINAL)}) AND (owner = ? "
                "OR owner NOT IN (SELECT controller_id FROM warmgate_pool_leases))"
            )
            removed = tuple(
                _stored(row)
                for row in tx.rows(
                    f"SELECT {_COLUMNS} {removable} ORDER BY member_id", (*_TERMINAL, controller_id)
                )
            )
            tx.run(f"DELETE {removable}", (*_TERMINAL, controller_id))
        return StoreReapReport(tuple(errored), tuple(recycled), removed, tuple(expired))

    # -- pools ---------------------------------------------------------------------------
    def drain(self, key: MatchKey) -> tuple[str, ...]:
        with self._tx() as tx:
            self._set_mode(tx, key, PoolMode.DRAINING)
            leaving = tx.rows(
                f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE match_key = ? "
                f"AND state IN ({_marks(_STANDBY)}) ORDER BY member_id{self._dialect.for_update}",
                (key.digest, *_STANDBY),
            )
            for stored in map(_stored, leaving):
                self._move(tx, stored, MemberState.DRAINING, reason="pool draining")
        return tuple(row[0] for row in leaving)

    def activate(self, key: MatchKey) -> None:
        with self._tx() as tx:
            self._set_mode(tx, key, PoolMode.ACTIVE)

    # -- reading -------------------------------------------------------------------------
    def get(self, member_id: str) -> StoredMember:
        with self._tx() as tx:
            rows = tx.rows(f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE member_id = ?", (member_id,))
        if not rows:
            raise UnknownMember(f"no pool member {member_id!r} (already removed?)")
        return _stored(rows[0])

    def members(self, key: MatchKey | None = None) -> tuple[StoredMember, ...]:
        with self._tx() as tx:
            if key is None:
                rows = tx.rows(f"SELECT {_COLUMNS} FROM warmgate_pool_members ORDER BY member_id")
            else:
                rows = tx.rows(
                    f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE match_key = ? ORDER BY member_id",
                    (key.digest,),
                )
        return tuple(map(_stored, rows))

    def counts(self, key: MatchKey) -> Mapping[MemberState, int]:
        with self._tx() as tx:
            return self._counts(tx, key)

    # -- inside a transaction ------------------------------------------------------------
    def _verdict(
        self, stored: StoredMember, expired: Sequence[str], now: float
    ) -> tuple[MemberState, str] | None:
        if stored.owner in expired:
            reason = f"controller {stored.owner}'s lease expired"
            if stored.state is MemberState.CLAIMED:
                return MemberState.DRAINING, reason
            return MemberState.ERRORED, reason
        return expiry(stored.member, self._config, now)

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

    def _pool_mode(self, tx: Tx, key: MatchKey, lock: str) -> PoolMode:
        """The key's mode, its row locked with ``lock`` so a drain cannot slip in between."""
        tx.run(
            "INSERT INTO warmgate_pools (match_key, match_json, mode) VALUES (?, ?, ?) "
            "ON CONFLICT (match_key) DO NOTHING",
            (key.digest, key.canonical(), PoolMode.ACTIVE.value),
        )
        rows = tx.rows(f"SELECT mode FROM warmgate_pools WHERE match_key = ?{lock}", (key.digest,))
        return PoolMode(rows[0][0])

    def _set_mode(self, tx: Tx, key: MatchKey, mode: PoolMode) -> None:
        tx.run(
            "INSERT INTO warmgate_pools (match_key, match_json, mode) VALUES (?, ?, ?) "
            "ON CONFLICT (match_key) DO UPDATE SET mode = excluded.mode",
            (key.digest, key.canonical(), mode.value),
        )

    def _insert(self, tx: Tx, member_id: str, key: MatchKey, owner: str, now: float) -> StoredMember:
        tx.run(
            f"INSERT INTO warmgate_pool_members (match_key, {_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, '')",
            (key.digest, member_id, key.canonical(), MemberState.WARMING.value, owner, now),
        )
        return StoredMember(Member(member_id, MemberState.WARMING, created_at=now), key, owner)

    def _locked(self, tx: Tx, member_id: str) -> StoredMember:
        rows = tx.rows(
            f"SELECT {_COLUMNS} FROM warmgate_pool_members WHERE member_id = ?{self._dialect.for_update}",
            (member_id,),
        )
        if not rows:
            raise UnknownMember(f"no pool member {member_id!r} (already removed?)")
        return _stored(rows[0])

    def _move(
        self,
        tx: Tx,
        stored: StoredMember,
        state: MemberState,
        *,
        ready_at: float | None = None,
        claimed_at: float | None = None,
        owner: str | None = None,
        reason: str = "",
    ) -> StoredMember:
        old = stored.member
        check_move(old, state)
        member = dataclasses.replace(
            old,
            state=state,
            ready_at=ready_at if ready_at is not None else old.ready_at,
            claimed_at=claimed_at if claimed_at is not None else old.claimed_at,
            reason=reason or old.reason,
        )
        moved = dataclasses.replace(stored, member=member, owner=owner or stored.owner)
        tx.run(
            "UPDATE warmgate_pool_members SET state = ?, ready_at = ?, claimed_at = ?, reason = ?, "
            "owner = ? WHERE member_id = ?",
            (state.value, member.ready_at, member.claimed_at, member.reason, moved.owner, old.member_id),
        )
        return moved

    def _count(self, tx: Tx, key: MatchKey, states: Sequence[str], owner: str | None = None) -> int:
        mine = " AND owner = ?" if owner is not None else ""
        rows = tx.rows(
            "SELECT count(*) FROM warmgate_pool_members WHERE match_key = ? "
            f"AND state IN ({_marks(states)}){mine}",
            (key.digest, *states, *((owner,) if owner is not None else ())),
        )
        return int(rows[0][0])

    def _counts(self, tx: Tx, key: MatchKey) -> dict[MemberState, int]:
        counts = dict.fromkeys(MemberState, 0)
        for state, n in tx.rows(
            "SELECT state, count(*) FROM warmgate_pool_members WHERE match_key = ? GROUP BY state",
            (key.digest,),
        ):
            counts[MemberState(state)] = int(n)
        return counts

    def _empty_reason(self, tx: Tx, key: MatchKey) -> str:
        counts = self._counts(tx, key)
        others = tx.rows(
            "SELECT count(*) FROM warmgate_pool_members WHERE match_key <> ? AND state = ?",
            (key.digest, MemberState.READY.value),
        )
        stale = int(others[0][0])
        return (
            f"warm pool has no READY member for {key} ({counts[MemberState.WARMING]} warming); "
            + (f"{stale} READY member(s) with other keys never match; " if stale else "")
            + "cold-start a replica instead"
        )
