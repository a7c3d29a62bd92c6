"""PostgreSQL only: a claim skips rows another transaction holds instead of queueing on them."""

from __future__ import annotations

import threading

import psycopg

from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.store import MatchKey, StoredMember
from warmgate.fleet.store.postgres import PostgresPoolStore

KEY = MatchKey.of("sha256:dddd", "v1", "cpu")
DEADLINE_S = 30.0


def test_a_claim_skips_the_member_another_controller_is_taking(postgres_conninfo: str) -> None:
    store = PostgresPoolStore(postgres_conninfo, PoolConfig())
    try:
        controller = store.join("c", now=0.0).controller_id
        for member_id, at in (("oldest", 1.0), ("next", 2.0)):
            store.register(member_id, KEY, controller, now=0.0)
            store.mark_ready(member_id, at)
        with psycopg.connect(postgres_conninfo) as other, other.transaction():
            # Another controller's claim in flight: it holds the oldest READY row.
            other.execute("SELECT member_id FROM warmgate_pool_members WHERE member_id = 'oldest' FOR UPDATE")
            got: list[StoredMember] = []
            claimer = threading.Thread(target=lambda: got.append(store.claim(KEY, controller, now=3.0)))
            claimer.start()
            claimer.join(DEADLINE_S)
            blocked = claimer.is_alive()
        claimer.join(DEADLINE_S)  # the lock is released now, so a blocked claim would finish
        assert not blocked, "claim waited on the locked row instead of skipping it"
        assert [m.member_id for m in got] == ["next"]
    finally:
        store.close()
