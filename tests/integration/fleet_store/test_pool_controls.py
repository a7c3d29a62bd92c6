"""The operator's pool controls, status and history, on both stores (virtual times)."""

from __future__ import annotations

import pytest

from tests.integration.fleet_store.conftest import OpenStore
from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolEmpty
from warmgate.errors import ConfigError
from warmgate.fleet.store import (
    MatchKey,
    PoolArchived,
    PoolEvent,
    PoolNotEmpty,
    PoolStore,
    UnknownPool,
    WarmPoolStatus,
    claimed_while_claimed,
)

KEY = MatchKey.of("sha256:1111", "v1", "cpu")
OTHER = MatchKey.of("sha256:2222", "v1", "cpu")
CONFIG = PoolConfig(target_size=1, max_size=4, keep_alive_ttl_s=1000.0)
W, R, C, E, D = (
    MemberState.WARMING,
    MemberState.READY,
    MemberState.CLAIMED,
    MemberState.ERRORED,
    MemberState.DRAINING,
)


def opened(open_store: OpenStore) -> tuple[PoolStore, str]:
    store = open_store(CONFIG, lease_ttl_s=100_000.0)
    return store, store.join("c", now=0.0).controller_id


def ready(store: PoolStore, controller: str, member_id: str, key: MatchKey = KEY, at: float = 1.0) -> None:
    store.register(member_id, key, controller, now=0.0)
    store.mark_ready(member_id, at)


def test_replenish_sets_the_minimum_standbys_top_ups_keep(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    store.replenish(KEY, 3)
    assert len(store.top_up(KEY, 1, c, now=1.0)) == 3  # the target is 1, the minimum 3
    store.replenish(KEY, 9)
    assert len(store.top_up(KEY, 1, c, now=2.0)) == 1  # up to max_size 4
    store.replenish(KEY, 0)
    assert store.top_up(KEY, 1, c, now=3.0) == ()
    assert len(store.top_up(OTHER, 1, c, now=3.0)) == 1  # other keys keep their own minimum
    with pytest.raises(ConfigError, match=">= 0"):
        store.replenish(KEY, -1)


def test_recycle_retires_ready_standbys_and_top_ups_replace_them(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "r1")
    ready(store, c, "r2")
    ready(store, c, "claimed")
    store.register("warming", KEY, c, now=2.0)
    ready(store, c, "other", OTHER)
    store.claim(KEY, c, now=0.5)  # the oldest READY member... all at 1.0: by id, "claimed"
    assert sorted(store.recycle(KEY, now=3.0)) == ["r1", "r2"]
    assert {m.member_id: m.state for m in store.members()} == {
        "r1": D,
        "r2": D,
        "claimed": C,
        "warming": W,
        "other": R,
    }
    assert store.get("r1").member.reason == "recycled"
    removed = store.reap(c, now=4.0).removed
    assert sorted(m.member_id for m in removed) == ["r1", "r2"]
    assert len(store.top_up(KEY, 3, c, now=5.0)) == 2  # "warming" + 2 fresh ones
    operator = [e for e in store.events(KEY) if e.reason == "recycled"]
    assert [(e.member_id, e.controller, e.at) for e in operator] == [
        ("r1", "operator", 3.0),
        ("r2", "operator", 3.0),
    ]


def test_archive_needs_a_drained_empty_pool_and_refuses_members_until_activated(
    open_store: OpenStore,
) -> None:
    store, c = opened(open_store)
    ready(store, c, "m")
    with pytest.raises(PoolNotEmpty, match="drain it before archiving"):
        store.archive(KEY, now=2.0)
    store.drain(KEY, now=2.0)
    with pytest.raises(PoolNotEmpty, match=r"1 member\(s\) \(1 draining\)"):
        store.archive(KEY, now=2.0)
    store.reap(c, now=3.0)  # the owner removes its drained member
    store.archive(KEY, now=4.0)
    [settings] = store.pools()
    assert (settings.label, settings.archived_at, settings.accepting) == ("archived", 4.0, False)

    with pytest.raises(PoolArchived, match="activate"):
        store.register("late", KEY, c, now=5.0)
    assert store.top_up(KEY, 2, c, now=5.0) == ()
    with pytest.raises(PoolEmpty, match="archived"):
        store.claim(KEY, c, now=5.0)
    store.activate(KEY)
    assert store.pools()[0].label == "active"
    assert len(store.top_up(KEY, 2, c, now=6.0)) == 2


def test_delete_removes_only_an_empty_pool_and_its_history(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "m1")
    ready(store, c, "m2")
    ready(store, c, "kept", OTHER)
    with pytest.raises(PoolNotEmpty, match=r"still has 2 member\(s\) \(2 ready\)"):
        store.delete(KEY)
    store.drain(KEY)
    store.reap(c, now=2.0)
    store.delete(KEY)
    assert [p.key for p in store.pools()] == [OTHER]
    assert {e.member_id for e in store.events()} == {"kept"}
    with pytest.raises(UnknownPool):
        store.delete(KEY)


def test_status_counts_states_statuses_ages_and_billable_standby_time(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    store.register("claimed", KEY, c, now=0.0)  # standby 0..40
    store.mark_ready("claimed", 10.0)
    store.register("failed", KEY, c, now=20.0)  # standby 20..50
    store.register("warming", KEY, c, now=60.0)  # standby 60..now
    store.register("reused", KEY, c, now=30.0)  # standby 30..45, then 80..now
    store.mark_ready("reused", 35.0)
    store.claim(KEY, c, now=40.0)  # "claimed" is the older READY member
    store.claim(KEY, c, now=45.0)
    store.mark_errored("failed", "crashed", now=50.0)
    store.release("reused", c, now=80.0)

    [status] = store.status(now=100.0, window_s=1000.0)
    assert status.key_id == KEY.digest[:12]
    assert dict(status.counts) == {W: 1, R: 1, C: 1, E: 1, D: 0}
    assert dict(status.statuses) == {
        WarmPoolStatus.WARMING: 1,
        WarmPoolStatus.AVAILABLE: 0,
        WarmPoolStatus.REUSED: 1,
        WarmPoolStatus.IN_USE: 1,
        WarmPoolStatus.TERMINATED: 1,
    }
    assert (status.oldest_standby_s, status.newest_standby_s) == (70.0, 40.0)  # created 30 and 60
    assert status.billable_standby_s == pytest.approx(40 + 30 + 40 + 15 + 20)
    [recent] = store.status(now=100.0, window_s=30.0)  # since 70: "warming" 30 + "reused" 20
    assert recent.billable_standby_s == pytest.approx(50.0)

    store.reap(c, now=110.0)  # removes "failed": its time stays billable
    [after] = store.status(now=110.0, window_s=1000.0)
    assert after.counts[E] == 0 and after.statuses[WarmPoolStatus.TERMINATED] == 1
    assert after.billable_standby_s == pytest.approx(40 + 30 + 50 + 15 + 30)
    assert status.to_json()["statuses"] == {
        "Warming": 1,
        "Available": 0,
        "Reused": 1,
        "InUse": 1,
        "Terminated": 1,
    }


def test_a_move_made_without_a_time_is_billed_until_its_removal(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    store.register("m", KEY, c, now=10.0)
    store.mark_draining("m", "retired")  # no time: the reap that removes it closes the span
    [status] = store.status(now=20.0, window_s=100.0)
    assert status.billable_standby_s == pytest.approx(10.0)  # still running, still billed
    store.reap(c, now=25.0)
    [status] = store.status(now=40.0, window_s=100.0)
    assert status.billable_standby_s == pytest.approx(15.0)


def test_history_shows_no_member_claimed_twice_while_claimed(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "m")
    for n in range(3):
        store.claim(KEY, c, now=10.0 + n)
        store.release("m", c, now=10.5 + n)
    store.claim(KEY, c, now=20.0)
    store.mark_draining("m", "scaled in", now=21.0)
    events = store.events(KEY)
    assert claimed_while_claimed(events) == []
    assert [e.event for e in events] == [
        PoolEvent.REGISTERED,
        PoolEvent.READY,
        *[PoolEvent.CLAIMED, PoolEvent.REUSED] * 3,
        PoolEvent.CLAIMED,
        PoolEvent.DRAINING,
    ]


def test_a_key_id_prefix_names_one_pool(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    keys = [MatchKey.of("sha256:3333", f"v{n}", "cpu") for n in range(40)]
    for key in keys:
        store.top_up(key, 1, c, now=1.0)
    first = keys[0].digest
    assert store.resolve_key(first[:12]) == keys[0]
    next(k for k in keys[1:] if k.digest[0] == first[0])  # 40 keys, 16 first digits: one shares
    with pytest.raises(ConfigError, match="ambiguous"):
        store.resolve_key(first[0])
    with pytest.raises(ConfigError, match="hex"):
        store.resolve_key("xyz")
    with pytest.raises(UnknownPool, match="pool status"):
        store.resolve_key("0" * 64)
