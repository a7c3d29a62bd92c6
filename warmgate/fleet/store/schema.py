"""The store's schema as numbered migrations, and the check that a store is up to date.

``warmgate_schema_version`` holds one row per applied migration. Migration 1 is the schema
the store had before versioning (written ``IF NOT EXISTS``, so a database created by that
code adopts versioning without losing a row); every later change is a new number, never an
edit of an old one. :func:`migrate` applies the pending ones in one transaction (the caller
serialises it: SQLite's write lock, PostgreSQL's advisory lock); :func:`require_current`
refuses a schema that is missing, older or newer, naming the command that fixes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from warmgate.fleet.store.records import SchemaVersionError
from warmgate.fleet.store.tx import Tx

MIGRATE_COMMAND = "warmgate pool migrate --store URL"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]  # "{identity}" stands for the dialect's auto-numbered key


MIGRATIONS = (
    Migration(
        1,
        "pools, members and leases",
        (
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
        ),
    ),
    Migration(
        2,
        "keep-alive, minimum standbys, archive, reuse count, history",
        (
            "ALTER TABLE warmgate_pools ADD COLUMN keep_alive_ttl_s DOUBLE PRECISION",
            "ALTER TABLE warmgate_pools ADD COLUMN min_standby INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE warmgate_pools ADD COLUMN archived_at DOUBLE PRECISION",
            "ALTER TABLE warmgate_pool_members ADD COLUMN reuses INTEGER NOT NULL DEFAULT 0",
            """CREATE TABLE warmgate_pool_events (
                event_id {identity},
                member_id TEXT NOT NULL,
                match_key TEXT NOT NULL,
                controller TEXT NOT NULL,
                event TEXT NOT NULL,
                at DOUBLE PRECISION,
                reason TEXT NOT NULL)""",
            """CREATE INDEX warmgate_pool_events_by_key
                ON warmgate_pool_events (match_key, member_id, event_id)""",
            """CREATE INDEX warmgate_pool_events_by_time
                ON warmgate_pool_events (match_key, at)""",
        ),
    ),
)
LATEST = MIGRATIONS[-1].version
_VERSIONS = """CREATE TABLE IF NOT EXISTS warmgate_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL)"""


def current_version(tx: Tx) -> int:
    """The highest applied migration; 0 for an empty database or one from before versioning."""
    if not tx.has_table("warmgate_schema_version"):
        return 0
    rows = tx.rows("SELECT max(version) FROM warmgate_schema_version")
    return 0 if rows[0][0] is None else int(rows[0][0])


def migrate(tx: Tx) -> tuple[int, ...]:
    """Apply every pending migration inside ``tx``; return the versions applied (none when the
    schema is current, so running it twice is harmless)."""
    if tx.dialect.serialize_migrate:
        tx.rows(tx.dialect.serialize_migrate)
    tx.run(_VERSIONS)
    version = current_version(tx)
    _refuse_newer(version)
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version <= version:
            continue
        for statement in migration.statements:
            tx.run(statement.replace("{identity}", tx.dialect.identity))
        tx.run(
            "INSERT INTO warmgate_schema_version (version, description, applied_at) "
            "VALUES (?, ?, CAST(CURRENT_TIMESTAMP AS TEXT))",  # the database's clock, for people
            (migration.version, migration.description),
        )
        applied.append(migration.version)
    return tuple(applied)


def require_current(tx: Tx) -> int:
    """Raise :class:`SchemaVersionError` unless the schema is at :data:`LATEST`."""
    version = current_version(tx)
    _refuse_newer(version)
    if version == LATEST:
        return version
    if version == 0 and not tx.has_table("warmgate_pool_members"):
        state = "has no pool schema yet"
    elif version == 0:
        state = "has a pool schema from before versioned migrations (version 0)"
    else:
        state = f"has pool schema version {version}"
    raise SchemaVersionError(
        f"the pool store {state}; this warmgate needs version {LATEST}: run `{MIGRATE_COMMAND}` "
        "(or open it with migrate=True)"
    )


def _refuse_newer(version: int) -> None:
    if version > LATEST:
        raise SchemaVersionError(
            f"the pool store's schema is at version {version}, newer than this warmgate knows "
            f"({LATEST}): upgrade warmgate on this host; never downgrade a shared store"
        )
