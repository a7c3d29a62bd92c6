"""What every SQL store shares below its rules: the dialect, a transaction's cursor, rows.

Our SQL is written once, with ``?`` markers; a :class:`Dialect` says what differs between the
engines (placeholders, row locks, identity columns, the catalog query).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from warmgate.autoscaling.pool import Member, MemberState
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.records import StoredMember

COLUMNS = "member_id, match_json, state, owner, created_at, ready_at, claimed_at, reason, reuses"
STANDBY = (MemberState.WARMING.value, MemberState.READY.value)
LIVE = (*STANDBY, MemberState.CLAIMED.value)
TERMINAL = (MemberState.ERRORED.value, MemberState.DRAINING.value)


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL engines: placeholders, row locks, identity columns."""

    placeholder: str  # the driver's parameter marker, written "?" in our SQL
    for_update: str = ""  # suffix locking the selected rows
    for_share: str = ""  # suffix share-locking them
    skip_locked: str = ""  # suffix locking them, skipping rows other transactions hold
    serialize_reap: str = ""  # statement run first in a reap so two reapers take turns
    serialize_migrate: str = ""  # statement run first in a migration so two take turns
    identity: str = "INTEGER PRIMARY KEY"  # an auto-numbered primary key column
    # How many tables of this name the connection sees (in its current schema).
    table_count: str = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"


class Tx:
    """One transaction's cursor, speaking our SQL (``?`` markers) to the driver."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(sql.replace("?", self.dialect.placeholder), tuple(params))
        if self._cursor.description is None:
            return []
        return [tuple(row) for row in self._cursor.fetchall()]

    def run(self, sql: str, params: Sequence[object] = ()) -> int:
        self._cursor.execute(sql.replace("?", self.dialect.placeholder), tuple(params))
        return int(self._cursor.rowcount)

    def has_table(self, name: str) -> bool:
        return int(self.rows(self.dialect.table_count, (name,))[0][0]) > 0


def marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def stored(row: tuple[Any, ...]) -> StoredMember:
    """A member row (:data:`COLUMNS`, in order) as a :class:`StoredMember`."""
    member_id, match_json, state, owner, created_at, ready_at, claimed_at, reason, reuses = row
    member = Member(
        member_id,
        MemberState(state),
        created_at=float(created_at),
        ready_at=None if ready_at is None else float(ready_at),
        claimed_at=None if claimed_at is None else float(claimed_at),
        reason=reason,
    )
    return StoredMember(member, MatchKey.from_json(match_json), owner, int(reuses))
