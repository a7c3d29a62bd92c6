"""The embedded default store: one SQLite file (stdlib :mod:`sqlite3`).

Every operation is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's write lock before
reading, so a claim's read and its update are atomic against every other connection to the
same file, in this process or another. Files use WAL so readers never block the writer.
Controllers on one host can share a file; across hosts use :mod:`.postgres`.

Opening a file migrates its schema to the latest version (SQLite is embedded: whoever opens the
file owns its schema, and the migration runs under the write lock, so openers take turns).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.store.sql import SqlPoolStore
from warmgate.fleet.store.tx import Dialect

SQLITE = Dialect(placeholder="?")


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
        # isolation_level=None: we issue BEGIN IMMEDIATE / COMMIT ourselves.
        self._conn = sqlite3.connect(
            str(path), timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        if str(path) != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
