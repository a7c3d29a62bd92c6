"""Versioned migrations: idempotent, adopted by pre-versioning databases, and a PostgreSQL
store whose schema is missing, older or newer refuses to open, naming the fix."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.integration.fleet_store.conftest import OpenStore
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.store import MatchKey, SchemaVersionError, SqlitePoolStore, open_store
from warmgate.fleet.store.postgres import PostgresPoolStore
from warmgate.fleet.store.schema import LATEST, MIGRATIONS

KEY = MatchKey.of("sha256:5555", "v1", "cpu")
MEMBER_V1 = (
    "INSERT INTO warmgate_pools (match_key, match_json, mode) VALUES ('{digest}', '{json}', 'active')",
    "INSERT INTO warmgate_pool_members (member_id, match_key, match_json, state, owner, created_at, "
    "ready_at, claimed_at, reason) VALUES ('old', '{digest}', '{json}', 'ready', 'gone', 0, 1, NULL, '')",
)


def version_1(run: Callable[[str], object], versioned: bool) -> None:
    """Lay out the schema as migration 1 left it (``versioned``) or as the store created it
    before versioning, with one READY member."""
    for statement in MIGRATIONS[0].statements:
        run(statement)
    if versioned:
        run(
            "CREATE TABLE warmgate_schema_version "
            "(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        run("INSERT INTO warmgate_schema_version VALUES (1, 'pools, members and leases', 'then')")
    for statement in MEMBER_V1:
        run(statement.format(digest=KEY.digest, json=KEY.canonical()))


def test_migrate_is_idempotent(open_store: OpenStore) -> None:
    open_store()  # migrated by the fixture (PostgreSQL) or by its open (SQLite)
    again = open_store()
    assert again.migrate() == ()
    assert again.migrate() == ()
    assert again.schema_version() == LATEST == 2


def test_postgres_refuses_a_missing_schema_and_names_the_command(postgres_bare_conninfo: str) -> None:
    with pytest.raises(
        SchemaVersionError, match=r"no pool schema yet.*run `warmgate pool migrate --store URL`"
    ):
        PostgresPoolStore(postgres_bare_conninfo, PoolConfig())
    store = PostgresPoolStore(postgres_bare_conninfo, PoolConfig(), migrate=True)
    assert (store.migrate(), store.schema_version()) == ((1, 2), 2)
    store.close()
    PostgresPoolStore(postgres_bare_conninfo, PoolConfig()).close()  # now it opens


@pytest.mark.parametrize("versioned", [True, False], ids=["version-1", "before-versioning"])
def test_postgres_refuses_an_older_schema_and_migrating_keeps_the_books(
    postgres_bare_conninfo: str, versioned: bool
) -> None:
    with psycopg.connect(postgres_bare_conninfo, autocommit=True) as conn:
        version_1(conn.execute, versioned)
    expected = "pool schema version 1" if versioned else "from before versioned migrations"
    with pytest.raises(SchemaVersionError, match=f"{expected}.*warmgate pool migrate"):
        PostgresPoolStore(postgres_bare_conninfo, PoolConfig())
    store = PostgresPoolStore(postgres_bare_conninfo, PoolConfig(), migrate=True)
    try:
        assert store.migrate() == ((2,) if versioned else (1, 2))
        old = store.get("old")
        assert (old.state, old.key, old.reuses) == (MemberState.READY, KEY, 0)
    finally:
        store.close()


def test_sqlite_migrates_a_file_from_before_versioning_on_open(tmp_path: Path) -> None:
    path = tmp_path / "pool.db"
    with sqlite3.connect(path) as conn:
        version_1(conn.execute, versioned=False)
    store = SqlitePoolStore(path, PoolConfig())
    try:
        assert (store.migrate(), store.schema_version()) == ((1, 2), 2)
        assert store.get("old").state is MemberState.READY
        controller = store.join("c", now=0.0).controller_id
        assert store.claim(KEY, controller, now=2.0).member_id == "old"
    finally:
        store.close()


def test_a_schema_newer_than_this_warmgate_is_refused(tmp_path: Path, postgres_conninfo: str) -> None:
    path = tmp_path / "pool.db"
    SqlitePoolStore(path, PoolConfig()).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO warmgate_schema_version VALUES (99, 'future', 'later')")
    with pytest.raises(SchemaVersionError, match=r"version 99, newer.*upgrade warmgate"):
        open_store(str(path), PoolConfig())
    with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO warmgate_schema_version VALUES (99, 'future', 'later')")
    for migrate in (False, True):
        with pytest.raises(SchemaVersionError, match="version 99, newer"):
            PostgresPoolStore(postgres_conninfo, PoolConfig(), migrate=migrate)


def test_concurrent_migrations_take_turns(postgres_bare_conninfo: str) -> None:
    barrier = threading.Barrier(4, timeout=60)
    applied: list[tuple[int, ...]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            store = PostgresPoolStore(postgres_bare_conninfo, PoolConfig(), migrate=True)
            applied.append(store.migrate())
            store.close()
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    assert sorted(applied) == [(), (), (), (1, 2)]  # exactly one of them migrated
