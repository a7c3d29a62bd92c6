"""The embedded default store: one SQLite file (stdlib :mod:`sqlite3`).

Every operation is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before
reading, so a claim's read and its update are atomic against every other connection to the
same file, in this process or another. Files use WAL so readers never block the writer.
Controllers on one host can share a file; across hosts use :mod:`.postgres`.

A claim does not sleep in SQLite's busy handler while another connection holds the write
lock: it waits for the lock in short slices and, before each, re-reads from a WAL snapshot
(no lock needed) whether any member is READY for it, failing fast with ``PoolEmpty`` as soon
as none is. So the claimers that lose a race learn it when the pool empties, not when the
lock's queue reaches them.

Opening a file migrates its schema to the latest version (SQLite is embedded: whoever opens the
file owns its schema, and the migration runs under the write lock, so openers take turns).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolEmpty
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import StoredMember, StoreUnavailable
from warmgate.fleet.store.sql import SqlPoolStore
from warmgate.fleet.store.tx import Dialect, Tx

SQLITE = Dialect(placeholder="?")
_CLAIM_SLICE_MS = 2  # how long a claim waits for the write lock before it re-reads the pool


class SqlitePoolStore(SqlPoolStore):
    """The pool's books in a SQLite file (or ``":memory:"`` for one process)."""

    def __init__(
        self,
        path: str | Path,
        config: PoolConfig,
        *,
        lease_ttl_s: float = 30.0,
        busy_timeout_s: float = 10.0,
        id_prefix: str = "standby",
    ) -> None:
        super().__init__(config, SQLITE, lease_ttl_s=lease_ttl_s, id_prefix=id_prefix)
        self._busy_timeout_s = busy_timeout_s
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            if str(path) != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"cannot open the SQLite pool store {str(path)!r}: {exc}") from exc
        self._conn.execute("PRAGMA foreign_keys=ON")
        try:
            self._open_schema(migrate=True)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _begin(self) -> Iterator[sqlite3.Cursor]:
        cursor = self._conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        else:
            cursor.execute("COMMIT")
        finally:
            cursor.close()

    def claim(self, key: MatchKey, controller_id: str, now: float, *, own: bool = False) -> StoredMember:
        """:meth:`SqlPoolStore.claim`, waiting for the write lock in slices of a few ms and
        failing fast once a snapshot shows no READY member (see the module docstring)."""
        with self._lock:
            deadline = time.monotonic() + self._busy_timeout_s
            self._conn.execute(f"PRAGMA busy_timeout = {_CLAIM_SLICE_MS}")
            try:
                while True:
                    try:
                        self._fail_if_empty(key, controller_id, now, own)
                        return super().claim(key, controller_id, now, own=own)
                    except sqlite3.OperationalError as exc:
                        if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                            raise
            finally:
                self._conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")

    def _fail_if_empty(self, key: MatchKey, controller_id: str, now: float, own: bool) -> None:
        """Raise ``PoolEmpty`` (or ``LeaseExpired``) if a read snapshot shows no READY member
        for this claim; otherwise return, and the claim takes the write lock."""
        cursor = self._conn.cursor()
        cursor.execute("BEGIN")  # deferred: a WAL read snapshot, never the write lock
        try:
            tx = Tx(cursor, self._dialect)
            self._require_lease(tx, controller_id, now)
            ready = (MemberState.READY.value,)
            if not self._count(tx, key, ready, owner=controller_id if own else None):
                raise PoolEmpty(self._empty_reason(tx, key))
        finally:
            cursor.execute("COMMIT")
            cursor.close()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
