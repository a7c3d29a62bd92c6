"""PostgreSQL only: a claim skips rows another transaction holds instead of queueing on them,
and a reap holds only the rows it moves."""

from __future__ import annotations

import multiprocessing
import threading

import psycopg

from tests.integration.fleet_store.holding import HoldingPostgres
from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.store import MatchKey, StoredMember, StoreReapReport
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


def test_a_reap_in_progress_leaves_healthy_members_claimable(postgres_conninfo: str) -> None:
    config = PoolConfig(keep_alive_ttl_s=100.0)
    reaper = HoldingPostgres(postgres_conninfo, config, lease_ttl_s=1000.0)
    claimer = PostgresPoolStore(postgres_conninfo, config, lease_ttl_s=1000.0)
    try:
        c = claimer.join("c", now=0.0).controller_id
        r = reaper.join("r", now=0.0).controller_id
        for member_id, at in (("stale", 1.0), ("fresh", 20.0)):
            claimer.register(member_id, KEY, c, now=0.0)
            claimer.mark_ready(member_id, at)
        held, reaper.hold = multiprocessing.Pipe()
        reports: list[StoreReapReport] = []
        reaping = threading.Thread(target=lambda: reports.append(reaper.reap(r, now=110.0)))
        reaping.start()
        try:
            assert held.poll(DEADLINE_S), "the reap never reached its commit"
            held.recv()
            # The reap holds "stale" (idle 109 s > 100 s), not "fresh" (idle 90 s): a claim
            # now skips the one and gets the other instead of PoolEmpty.
            assert claimer.claim(KEY, c, now=110.0).member_id == "fresh"
        finally:
            held.send("commit")  # the reap commits, whatever the claim did
            reaping.join(DEADLINE_S)
        assert [report.recycled for report in reports] == [("stale",)]
    finally:
        reaper.close()
        claimer.close()
