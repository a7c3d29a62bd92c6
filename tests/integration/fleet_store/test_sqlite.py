"""SQLite only: a claim fails fast from a snapshot while another connection holds the write
lock, and waits for the lock only when a READY member may be there for it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from warmgate.autoscaling.pool import PoolConfig, PoolEmpty
from warmgate.fleet.store import MatchKey, SqlitePoolStore, StoredMember

KEY = MatchKey.of("sha256:aaaa", "v1", "cpu")
DEADLINE_S = 30.0


def test_an_empty_pool_answers_pool_empty_without_the_write_lock(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.db", PoolConfig(), busy_timeout_s=DEADLINE_S)
    controller = store.join("c", now=0.0).controller_id
    store.register("warming", KEY, controller, now=0.0)
    other = sqlite3.connect(tmp_path / "pool.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another controller's transaction holds the lock
        with pytest.raises(PoolEmpty, match="1 warming"):
            store.claim(KEY, controller, now=1.0)  # would wait DEADLINE_S if it queued for the lock
        assert other.in_transaction
    finally:
        other.close()
        store.close()


def test_a_claim_racing_a_held_lock_gets_the_ready_member_once_the_lock_is_free(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.db", PoolConfig(), busy_timeout_s=DEADLINE_S)
    controller = store.join("c", now=0.0).controller_id
    store.register("m", KEY, controller, now=0.0)
    store.mark_ready("m", 1.0)
    other = sqlite3.connect(tmp_path / "pool.db", isolation_level=None)
    got: list[StoredMember] = []
    try:
        other.execute("BEGIN IMMEDIATE")
        claimer = threading.Thread(target=lambda: got.append(store.claim(KEY, controller, now=2.0)))
        claimer.start()  # it cannot commit while `other` holds the lock; PoolEmpty would be wrong
        other.execute("ROLLBACK")
        claimer.join(DEADLINE_S)
        assert [m.member_id for m in got] == ["m"]
    finally:
        other.close()
        store.close()
