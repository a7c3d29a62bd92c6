"""Keep-alive per key, reuse on release, TTL 0 and maximum age, on both stores.

Times are virtual (every call takes ``now``): TTL 100 s, maximum age 1000 s.
"""

from __future__ import annotations

import pytest

from tests.integration.fleet_store.conftest import OpenStore
from warmgate.autoscaling.pool import IllegalTransition, MemberState, PoolConfig
from warmgate.errors import ConfigError
from warmgate.fleet.store import MatchKey, PoolStore, WarmPoolStatus, member_status

KEY = MatchKey.of("sha256:eeee", "v1", "cpu")
OTHER = MatchKey.of("sha256:ffff", "v1", "cpu")
CONFIG = PoolConfig(target_size=2, max_size=4, keep_alive_ttl_s=100.0, max_age_s=1000.0)
W, R, C, D = MemberState.WARMING, MemberState.READY, MemberState.CLAIMED, MemberState.DRAINING
LONG_LEASE = 100_000.0


def ready(store: PoolStore, controller: str, member_id: str, key: MatchKey = KEY, at: float = 1.0) -> None:
    store.register(member_id, key, controller, now=0.0)
    store.mark_ready(member_id, at)


def opened(open_store: OpenStore, config: PoolConfig = CONFIG) -> tuple[PoolStore, str]:
    store = open_store(config, lease_ttl_s=LONG_LEASE)
    return store, store.join("c", now=0.0).controller_id


def test_a_released_member_is_ready_again_and_its_keep_alive_renewed(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "reused", at=1.0)
    ready(store, c, "idle", at=2.0)
    assert store.claim(KEY, c, now=50.0).member_id == "reused"
    assert member_status(store.get("reused")) is WarmPoolStatus.IN_USE

    back = store.release("reused", c, now=90.0)
    assert (back.state, back.member.ready_at, back.member.claimed_at, back.reuses) == (R, 90.0, None, 1)
    assert store.get("reused") == back
    assert member_status(back) is WarmPoolStatus.REUSED
    assert member_status(store.get("idle")) is WarmPoolStatus.AVAILABLE

    # At 150 the idle member is 148 s idle (TTL 100): recycled. The reused one is 60 s idle.
    report = store.reap(c, now=150.0)
    assert report.recycled == ("idle",)
    assert store.get("reused").state is R
    report = store.reap(c, now=191.0)  # 101 s after its renewal
    assert [(m.member_id, m.member.reason) for m in report.removed] == [("reused", "keep-alive TTL expired")]


def test_a_reused_member_is_claimed_again(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "m")
    for n in range(3):
        assert store.claim(KEY, c, now=10.0 + n).member_id == "m"
        store.release("m", c, now=10.5 + n)
    assert store.get("m").reuses == 3
    assert [p.reuses for p in store.status(now=20.0)] == [3]


def test_keep_alive_changes_at_runtime_per_key(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "long", KEY)
    ready(store, c, "short", OTHER)
    store.set_keep_alive(KEY, 500.0)
    assert store.reap(c, now=300.0).recycled == ("short",)  # OTHER keeps the default 100 s
    assert store.get("long").state is R
    store.set_keep_alive(KEY, None)  # back to the controllers' default
    assert store.reap(c, now=301.0).recycled == ("long",)


def test_ttl_zero_ends_the_keys_standbys_at_the_next_reap_and_blocks_reuse(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "claimed")
    ready(store, c, "ready", at=2.0)
    store.register("warming", KEY, c, now=3.0)
    ready(store, c, "other", OTHER)
    assert store.claim(KEY, c, now=4.0).member_id == "claimed"

    store.set_keep_alive(KEY, 0.0)
    assert store.get("ready").state is R  # nothing moves before the reap
    report = store.reap(c, now=5.0)
    assert sorted(report.recycled) == ["ready", "warming"]
    assert {m.member_id for m in report.removed} == {"ready", "warming"}
    assert store.get("claimed").state is C  # a claimed replica keeps serving
    assert store.get("other").state is R  # other keys keep their TTL

    released = store.release("claimed", c, now=6.0)
    assert (released.state, released.member.reason) == (D, "released: keep-alive TTL is 0")
    assert store.top_up(KEY, 2, c, now=7.0) == ()  # and no new standbys either
    store.set_keep_alive(KEY, 100.0)
    assert len(store.top_up(KEY, 2, c, now=8.0)) == 2


def test_maximum_age_counts_from_creation_whatever_the_reuse(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    ready(store, c, "old")  # created at 0; maximum age 1000
    for at in (90.0, 180.0, 270.0, 360.0, 450.0, 540.0, 630.0, 720.0, 810.0, 900.0):
        store.claim(KEY, c, now=at)
        assert store.release("old", c, now=at + 1.0).state is R  # each reuse renews the TTL
        assert store.reap(c, now=at + 2.0).recycled == ()
    report = store.reap(c, now=1000.5)  # idle 99.5 s, but 1000.5 s old
    assert [(m.member_id, m.member.reason) for m in report.removed] == [("old", "maximum age reached")]

    ready(store, c, "older")
    store.claim(KEY, c, now=999.0)
    released = store.release("older", c, now=1000.0)
    assert (released.state, released.member.reason) == (D, "released: maximum age reached")


def test_release_drains_when_the_pool_is_full_or_draining(open_store: OpenStore) -> None:
    store, c = opened(open_store, PoolConfig(target_size=1, max_size=2, keep_alive_ttl_s=100.0))
    for n in range(3):
        ready(store, c, f"m{n}", at=1.0 + n)
    store.claim(KEY, c, now=5.0)  # m0; m1 and m2 are the 2 standbys: full
    full = store.release("m0", c, now=6.0)
    assert full.state is D and full.member.reason.startswith("released: the pool is full")

    other = store.join("other", now=0.0).controller_id
    store.claim(KEY, c, now=7.0)  # m1; one standby left of max 2
    store.claim(KEY, other, now=7.0)  # m2
    store.drain(KEY)
    assert store.release("m2", other, now=8.0).member.reason == "released: the pool is draining or archived"
    store.activate(KEY)
    assert store.release("m1", c, now=9.0).state is R


def test_release_counts_only_the_callers_standbys_with_own(open_store: OpenStore) -> None:
    store, c = opened(open_store, PoolConfig(target_size=1, max_size=1, keep_alive_ttl_s=100.0))
    other = store.join("other", now=0.0).controller_id
    ready(store, other, "theirs")
    ready(store, c, "mine", at=2.0)
    store.claim(KEY, c, now=3.0, own=True)
    assert store.release("mine", c, now=4.0, own=True).state is R  # "theirs" is not counted


def test_only_the_claimer_releases_a_claimed_member(open_store: OpenStore) -> None:
    store, c = opened(open_store)
    other = store.join("other", now=0.0).controller_id
    ready(store, c, "m")
    with pytest.raises(IllegalTransition, match="only a claimed member"):
        store.release("m", c, now=2.0)
    store.claim(KEY, c, now=3.0)
    with pytest.raises(IllegalTransition, match="only its claimer"):
        store.release("m", other, now=4.0)
    assert store.get("m").state is C


def test_a_negative_keep_alive_is_refused(open_store: OpenStore) -> None:
    store, _ = opened(open_store)
    with pytest.raises(ConfigError, match=">= 0"):
        store.set_keep_alive(KEY, -1.0)
