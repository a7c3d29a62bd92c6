"""Stores that stop inside a transaction, just before it commits, until told to go on.

A controller killed "mid-claim" must die while its claim transaction is open: the claim's
SELECT and UPDATE have run (on PostgreSQL the row is locked; on SQLite the write lock is
held) but nothing is committed. These subclasses wrap the stores' own ``_begin`` (the hook
every SQL store implements): when :attr:`hold` is set, the next transaction reports
``"holding"`` on the pipe after its statements ran, and blocks reading the pipe before the
commit: until the test answers (the transaction then commits) or SIGKILLs the process.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from warmgate.fleet.store.postgres import PostgresPoolStore
from warmgate.fleet.store.sqlite import SqlitePoolStore


class HoldingSqlite(SqlitePoolStore):
    hold: Connection | None = None

    @contextmanager
    def _begin(self) -> Iterator[Any]:
        with super()._begin() as cursor:
            yield cursor
            _hold(self)


class HoldingPostgres(PostgresPoolStore):
    hold: Connection | None = None

    @contextmanager
    def _begin(self) -> Iterator[Any]:
        with super()._begin() as cursor:
            yield cursor
            _hold(self)


def _hold(store: HoldingSqlite | HoldingPostgres) -> None:
    pipe, store.hold = store.hold, None
    if pipe is not None:
        pipe.send(("holding",))
        pipe.recv()  # the test answers, or kills this process here, before the commit
