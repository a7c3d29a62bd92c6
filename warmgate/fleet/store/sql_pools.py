"""The SQL store's base: transactions, the schema, reading the books, and the operator's
controls over whole pools (keep-alive, minimum standbys, recycle, drain, archive, delete,
status). :class:`~warmgate.fleet.store.sql.SqlPoolStore` adds the members' moves.

A pool's row in ``warmgate_pools`` holds its mode (active or draining), the keep-alive TTL an
operator set (``NULL``: each controller's configured default), the minimum standbys that
top-ups honour, and ``archived_at``. Operator moves are recorded in the history under the
controller name ``operator``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from warmgate.autoscaling.pool import (
    MemberState,
    PoolConfig,
    PoolMode,
    UnknownMember,
    check_move,
)
from warmgate.errors import ConfigError
from warmgate.fleet.store import schema
from warmgate.fleet.store.history import (
    EVENT_COLUMNS,
    EventRecord,
    PoolEvent,
    billable_standby_s,
    event_record,
    record,
)
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import PoolNotEmpty, StoredMember, UnknownPool
from warmgate.fleet.store.status import PoolSettings, PoolStatus, WarmPoolStatus, member_status
from warmgate.fleet.store.tx import COLUMNS, STANDBY, Dialect, Tx, marks, stored

OPERATOR = "operator"  # the controller name operator moves are recorded under
_POOL_COLUMNS = "match_json, mode, keep_alive_ttl_s, min_standby, archived_at"
_HEX = re.compile(r"[0-9a-f]{1,64}")


def _settings(row: tuple[Any, ...]) -> PoolSettings:
    match_json, mode, ttl, min_standby, archived_at = row
    return PoolSettings(
        MatchKey.from_json(match_json),
        PoolMode(mode),
        None if ttl is None else float(ttl),
        int(min_standby),
        None if archived_at is None else float(archived_at),
    )


class SqlPools(ABC):
    """Transactions, schema, reads and pool-wide controls shared by the SQL stores."""

    def __init__(self, config: PoolConfig, dialect: Dialect, *, lease_ttl_s: float = 30.0) -> None:
        if lease_ttl_s <= 0:
            raise ConfigError(f"lease_ttl_s must be > 0 seconds, got {lease_ttl_s}")
        self._config = config
        self._dialect = dialect
        self._lease_ttl_s = lease_ttl_s
        self._lock = threading.RLock()  # re-entered by a store's own multi-step operations
        self._applied: tuple[int, ...] = ()

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

    # -- schema --------------------------------------------------------------------------
    def _open_schema(self, migrate: bool) -> None:
        """Migrate the schema to the latest version, or refuse a store that is not there."""
        with self._tx() as tx:
            if migrate:
                self._applied = schema.migrate(tx)
            else:
                schema.require_current(tx)

    def migrate(self) -> tuple[int, ...]:
        """Apply pending migrations; return the versions this store object applied, when it
        was opened or now (none: the schema was current)."""
        with self._tx() as tx:
            self._applied += schema.migrate(tx)
        return self._applied

    def schema_version(self) -> int:
        with self._tx() as tx:
            return schema.current_version(tx)

    # -- pools ---------------------------------------------------------------------------
    def drain(self, key: MatchKey, *, now: float | None = None) -> tuple[str, ...]:
        with self._tx() as tx:
            self._set_pool(tx, key, mode=PoolMode.DRAINING)
            return self._retire(tx, key, STANDBY, "pool draining", now)

    def recycle(self, key: MatchKey, now: float) -> tuple[str, ...]:
        """Retire the key's READY standbys (reason ``recycled``): their controllers stop them
        at their next reap and top up with fresh ones. Return their ids."""
        with self._tx() as tx:
            self._pool(tx, key, self._dialect.for_update)
            return self._retire(tx, key, (MemberState.READY.value,), "recycled", now)

    def activate(self, key: MatchKey) -> None:
        with self._tx() as tx:
            self._set_pool(tx, key, mode=PoolMode.ACTIVE)
            tx.run("UPDATE warmgate_pools SET archived_at = NULL WHERE match_key = ?", (key.digest,))

    def set_keep_alive(self, key: MatchKey, ttl_s: float | None) -> None:
        """The key's keep-alive TTL from now on (``None``: each controller's configured
        default). 0 ends its standbys at the next reap, blocks reuse and stops top-ups."""
        if ttl_s is not None and not ttl_s >= 0:
            raise ConfigError(f"keep-alive TTL must be >= 0 seconds, got {ttl_s}")
        with self._tx() as tx:
            self._pool(tx, key, self._dialect.for_update)
            tx.run("UPDATE warmgate_pools SET keep_alive_ttl_s = ? WHERE match_key = ?", (ttl_s, key.digest))

    def replenish(self, key: MatchKey, min_standby: int) -> None:
        """Top-ups of ``key`` keep at least ``min_standby`` standbys (WARMING + READY), up to
        each controller's ``max_size``."""
        if min_standby < 0:
            raise ConfigError(f"the minimum standbys must be >= 0, got {min_standby}")
        with self._tx() as tx:
            self._pool(tx, key, self._dialect.for_update)
            tx.run("UPDATE warmgate_pools SET min_standby = ? WHERE match_key = ?", (min_standby, key.digest))

    def archive(self, key: MatchKey, now: float) -> None:
        """Hide a drained, empty pool; it refuses claims and top-ups until :meth:`activate`."""
        with self._tx() as tx:
            pool = self._known_pool(tx, key)
            if pool.mode is not PoolMode.DRAINING:
                raise PoolNotEmpty(f"pool {pool.key_id} is {pool.label}: drain it before archiving")
            self._require_empty(tx, pool, "archiving")
            tx.run("UPDATE warmgate_pools SET archived_at = ? WHERE match_key = ?", (now, key.digest))

    def delete(self, key: MatchKey) -> None:
        """Remove a pool that has no members, with its history."""
        with self._tx() as tx:
            pool = self._known_pool(tx, key)
            self._require_empty(tx, pool, "deleting")
            tx.run("DELETE FROM warmgate_pool_events WHERE match_key = ?", (key.digest,))
            tx.run("DELETE FROM warmgate_pools WHERE match_key = ?", (key.digest,))

    # -- reading -------------------------------------------------------------------------
    def pools(self) -> tuple[PoolSettings, ...]:
        with self._tx() as tx:
            rows = tx.rows(f"SELECT {_POOL_COLUMNS} FROM warmgate_pools ORDER BY match_key")
        return tuple(map(_settings, rows))

    def resolve_key(self, key_id: str) -> MatchKey:
        """The one pool whose key id (SHA-256 of the key) starts with ``key_id``."""
        if not _HEX.fullmatch(key_id):
            raise ConfigError(f"key id {key_id!r}: write a prefix of the key's SHA-256 (hex digits)")
        matches = [p.key for p in self.pools() if p.key.digest.startswith(key_id)]
        if not matches:
            raise UnknownPool(f"no pool has a key id starting with {key_id!r}; see `warmgate pool status`")
        if len(matches) > 1:
            raise ConfigError(
                f"key id {key_id!r} is ambiguous: {len(matches)} pools start with it; write more digits"
            )
        return matches[0]

    def get(self, member_id: str) -> StoredMember:
        with self._tx() as tx:
            rows = tx.rows(f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE member_id = ?", (member_id,))
        if not rows:
            raise UnknownMember(f"no pool member {member_id!r} (already removed?)")
        return stored(rows[0])

    def members(self, key: MatchKey | None = None) -> tuple[StoredMember, ...]:
        with self._tx() as tx:
            return self._members(tx, key)

    def counts(self, key: MatchKey) -> Mapping[MemberState, int]:
        with self._tx() as tx:
            return self._counts(tx, key)

    def events(self, key: MatchKey | None = None) -> tuple[EventRecord, ...]:
        """The recorded history, oldest first (one key's, or every key's)."""
        with self._tx() as tx:
            return self._events(tx, key)

    def status(
        self, now: float, window_s: float = 3600.0, key: MatchKey | None = None
    ) -> tuple[PoolStatus, ...]:
        """Every pool (or ``key``'s), archived ones included: counts, ages, billable time."""
        if not window_s > 0:
            raise ConfigError(f"the status window must be > 0 seconds, got {window_s}")
        with self._tx() as tx:
            where = " WHERE match_key = ?" if key is not None else ""
            params = (key.digest,) if key is not None else ()
            pools = map(
                _settings,
                tx.rows(f"SELECT {_POOL_COLUMNS} FROM warmgate_pools{where} ORDER BY match_key", params),
            )
            return tuple(self._status(tx, pool, now, window_s) for pool in pools)

    # -- inside a transaction ------------------------------------------------------------
    def _status(self, tx: Tx, pool: PoolSettings, now: float, window_s: float) -> PoolStatus:
        members = self._members(tx, pool.key)
        statuses = dict.fromkeys(WarmPoolStatus, 0)
        for member in members:
            if member.state.value in (*STANDBY, MemberState.CLAIMED.value):
                statuses[member_status(member)] += 1
        tally = dict.fromkeys(PoolEvent, 0)
        for event, n in tx.rows(
            "SELECT event, count(*) FROM warmgate_pool_events WHERE match_key = ? GROUP BY event",
            (pool.key.digest,),
        ):
            tally[PoolEvent(event)] = int(n)
        statuses[WarmPoolStatus.TERMINATED] = tally[PoolEvent.ERRORED] + tally[PoolEvent.DRAINING]
        ages = [now - m.member.created_at for m in members if m.state.value in STANDBY]
        since = now - window_s
        return PoolStatus(
            pool,
            self._counts(tx, pool.key),
            statuses,
            max(ages) if ages else None,
            min(ages) if ages else None,
            billable_standby_s(self._events_since(tx, pool.key, since), since, now),
            window_s,
            tally[PoolEvent.REUSED],
        )

    def _events_since(self, tx: Tx, key: MatchKey, since: float) -> tuple[EventRecord, ...]:
        """The whole history of the members that may have been standbys after ``since``: those
        still booked and those with an event since then (or one without a time). So status
        reads what its window needs, not the key's whole history."""
        rows = tx.rows(
            f"SELECT {EVENT_COLUMNS} FROM warmgate_pool_events WHERE match_key = ? AND member_id IN ("
            "SELECT member_id FROM warmgate_pool_events WHERE match_key = ? AND (at IS NULL OR at >= ?) "
            "UNION SELECT member_id FROM warmgate_pool_members WHERE match_key = ?) ORDER BY event_id",
            (key.digest, key.digest, since, key.digest),
        )
        return tuple(map(event_record, rows))

    def _members(self, tx: Tx, key: MatchKey | None) -> tuple[StoredMember, ...]:
        if key is None:
            rows = tx.rows(f"SELECT {COLUMNS} FROM warmgate_pool_members ORDER BY member_id")
        else:
            rows = tx.rows(
                f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE match_key = ? ORDER BY member_id",
                (key.digest,),
            )
        return tuple(map(stored, rows))

    def _events(self, tx: Tx, key: MatchKey | None) -> tuple[EventRecord, ...]:
        where = " WHERE match_key = ?" if key is not None else ""
        params = (key.digest,) if key is not None else ()
        rows = tx.rows(f"SELECT {EVENT_COLUMNS} FROM warmgate_pool_events{where} ORDER BY event_id", params)
        return tuple(map(event_record, rows))

    def _pool(self, tx: Tx, key: MatchKey, lock: str) -> PoolSettings:
        """The key's row (created active if new), locked with ``lock`` so that a drain cannot
        slip in between reading it and acting on it."""
        tx.run(
            "INSERT INTO warmgate_pools (match_key, match_json, mode) VALUES (?, ?, ?) "
            "ON CONFLICT (match_key) DO NOTHING",
            (key.digest, key.canonical(), PoolMode.ACTIVE.value),
        )
        rows = tx.rows(f"SELECT {_POOL_COLUMNS} FROM warmgate_pools WHERE match_key = ?{lock}", (key.digest,))
        return _settings(rows[0])

    def _known_pool(self, tx: Tx, key: MatchKey) -> PoolSettings:
        rows = tx.rows(
            f"SELECT {_POOL_COLUMNS} FROM warmgate_pools WHERE match_key = ?{self._dialect.for_update}",
            (key.digest,),
        )
        if not rows:
            raise UnknownPool(f"no pool for {key} on the books")
        return _settings(rows[0])

    def _require_empty(self, tx: Tx, pool: PoolSettings, doing: str) -> None:
        counts = self._counts(tx, pool.key)
        if sum(counts.values()):
            held = ", ".join(f"{n} {state.value}" for state, n in counts.items() if n)
            raise PoolNotEmpty(
                f"pool {pool.key_id} still has {sum(counts.values())} member(s) ({held}); before "
                f"{doing} it, drain it and let its controllers reap them"
            )

    def _set_pool(self, tx: Tx, key: MatchKey, *, mode: PoolMode) -> None:
        tx.run(
            "INSERT INTO warmgate_pools (match_key, match_json, mode) VALUES (?, ?, ?) "
            "ON CONFLICT (match_key) DO UPDATE SET mode = excluded.mode",
            (key.digest, key.canonical(), mode.value),
        )

    def _retire(
        self, tx: Tx, key: MatchKey, states: Sequence[str], reason: str, now: float | None
    ) -> tuple[str, ...]:
        leaving = tx.rows(
            f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE match_key = ? "
            f"AND state IN ({marks(states)}) ORDER BY member_id{self._dialect.for_update}",
            (key.digest, *states),
        )
        for member in map(stored, leaving):
            self._move(tx, member, MemberState.DRAINING, now, reason=reason, by=OPERATOR)
        return tuple(row[0] for row in leaving)

    def _locked(self, tx: Tx, member_id: str) -> StoredMember:
        rows = tx.rows(
            f"SELECT {COLUMNS} FROM warmgate_pool_members WHERE member_id = ?{self._dialect.for_update}",
            (member_id,),
        )
        if not rows:
            raise UnknownMember(f"no pool member {member_id!r} (already removed?)")
        return stored(rows[0])

    def _move(
        self,
        tx: Tx,
        member: StoredMember,
        state: MemberState,
        now: float | None,
        *,
        ready_at: float | None = None,
        claimed_at: float | None = None,
        owner: str | None = None,
        reason: str = "",
        by: str | None = None,
    ) -> StoredMember:
        """Move one locked member along a legal edge and record the event (made by ``by``,
        else the member's new owner)."""
        old = member.member
        check_move(old, state)
        new = dataclasses.replace(
            old,
            state=state,
            ready_at=ready_at if ready_at is not None else old.ready_at,
            claimed_at=claimed_at if claimed_at is not None else old.claimed_at,
            reason=reason or old.reason,
        )
        moved = dataclasses.replace(member, member=new, owner=owner or member.owner)
        tx.run(
            "UPDATE warmgate_pool_members SET state = ?, ready_at = ?, claimed_at = ?, reason = ?, "
            "owner = ? WHERE member_id = ?",
            (state.value, new.ready_at, new.claimed_at, new.reason, moved.owner, old.member_id),
        )
        self._record(tx, moved, PoolEvent(state.value), now, reason, by)
        return moved

    def _record(
        self,
        tx: Tx,
        member: StoredMember,
        event: PoolEvent,
        at: float | None,
        reason: str = "",
        by: str | None = None,
    ) -> None:
        record(tx, member.member_id, member.key.digest, by or member.owner, event, at, reason)

    def _count(self, tx: Tx, key: MatchKey, states: Sequence[str], owner: str | None = None) -> int:
        mine = " AND owner = ?" if owner is not None else ""
        rows = tx.rows(
            "SELECT count(*) FROM warmgate_pool_members WHERE match_key = ? "
            f"AND state IN ({marks(states)}){mine}",
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
