"""The PoolStore contract, run against SQLite and a real PostgreSQL (see conftest)."""

from __future__ import annotations

import pytest

from tests.integration.fleet_store.conftest import OpenStore
from warmgate.autoscaling.pool import (
    IllegalTransition,
    MemberState,
    PoolConfig,
    PoolEmpty,
    UnknownMember,
)
from warmgate.fleet.store import (
    DuplicateMember,
    LeaseExpired,
    MatchKey,
    PoolDraining,
    PoolStore,
)

KEY = MatchKey.of("sha256:aaaa", "v1", "cpu", {"batch": "32", "seq": "256"})
W, R, C, E, D = (
    MemberState.WARMING,
    MemberState.READY,
    MemberState.CLAIMED,
    MemberState.ERRORED,
    MemberState.DRAINING,
)


def ready(store: PoolStore, controller: str, key: MatchKey, *ids: str, at: float = 1.0) -> None:
    for member_id in ids:
        store.register(member_id, key, controller, now=0.0)
        store.mark_ready(member_id, at)


def test_a_registered_member_warms_becomes_ready_and_is_claimed(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    b = store.join("b", now=0.0).controller_id
    store.register("m1", KEY, a, now=0.0)
    assert store.counts(KEY)[W] == 1
    store.mark_ready("m1", 2.0)
    assert dict(store.counts(KEY)) == {W: 0, R: 1, C: 0, E: 0, D: 0}

    claimed = store.claim(KEY, b, now=3.0)
    assert (claimed.member_id, claimed.state, claimed.owner) == ("m1", C, b)
    assert (claimed.member.ready_at, claimed.member.claimed_at) == (2.0, 3.0)
    assert store.get("m1") == claimed  # what claim returned is what the books hold
    assert store.counts(KEY)[C] == 1


def test_claim_hands_out_the_oldest_ready_member(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    ready(store, a, KEY, "late", at=7.0)
    ready(store, a, KEY, "early", at=5.0)
    assert store.claim(KEY, a, now=10.0).member_id == "early"
    assert store.claim(KEY, a, now=10.0).member_id == "late"


def test_claim_fails_fast_when_nothing_is_ready(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    store.register("m1", KEY, a, now=0.0)  # still warming
    with pytest.raises(PoolEmpty, match="cold-start") as raised:
        store.claim(KEY, a, now=1.0)
    assert raised.value.status == 503
    assert store.get("m1").state is W


@pytest.mark.parametrize(
    "stale",
    [
        MatchKey.of("sha256:bbbb", "v1", "cpu", {"batch": "32", "seq": "256"}),  # other weights
        MatchKey.of("sha256:aaaa", "v0", "cpu", {"batch": "32", "seq": "256"}),  # older version
        MatchKey.of("sha256:aaaa", "v1", "cuda:0", {"batch": "32", "seq": "256"}),  # other device
        MatchKey.of("sha256:aaaa", "v1", "cpu", {"batch": "16", "seq": "256"}),  # other options
        MatchKey.of("sha256:aaaa", "v1", "cpu", {"batch": "32"}),  # fewer options
    ],
    ids=["digest", "version", "device", "option-value", "option-set"],
)
def test_a_standby_with_any_other_key_is_never_promoted(open_store: OpenStore, stale: MatchKey) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    ready(store, a, stale, "stale-1", "stale-2")
    with pytest.raises(PoolEmpty, match="2 READY member"):
        store.claim(KEY, a, now=2.0)
    assert {m.state for m in store.members(stale)} == {R}
    assert store.counts(KEY)[R] == 0
    ready(store, a, KEY, "fresh")
    assert store.claim(KEY, a, now=3.0).member_id == "fresh"


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((R,), R),
        ((R, C), R),  # claimed never goes back to ready
        ((R, C), E),  # a claimed member only drains
        ((E,), R),  # errored is terminal
        ((E,), D),
        ((D,), R),  # draining is terminal
        ((D,), E),
    ],
    ids=lambda value: "-".join(s.value for s in value) if isinstance(value, tuple) else f"to-{value.value}",
)
def test_illegal_moves_are_refused_as_the_pure_pool_refuses_them(
    open_store: OpenStore, path: tuple[MemberState, ...], illegal: MemberState
) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    store.register("m", KEY, a, now=0.0)
    moves = {
        R: lambda: store.mark_ready("m", 1.0),
        C: lambda: store.claim(KEY, a, now=1.0),
        E: lambda: store.mark_errored("m", "boom"),
        D: lambda: store.mark_draining("m", "released"),
    }
    for state in path:
        moves[state]()
    with pytest.raises(IllegalTransition, match=f"{path[-1].value} -> {illegal.value}"):
        moves[illegal]()
    assert store.get("m").state is path[-1]  # the refused move changed nothing


def test_unknown_and_duplicate_members_are_named(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    with pytest.raises(UnknownMember, match="ghost"):
        store.mark_ready("ghost", 1.0)
    store.register("m", KEY, a, now=0.0)
    with pytest.raises(DuplicateMember, match="'m'"):
        store.register("m", KEY, a, now=0.0)


def test_reap_errors_stragglers_recycles_stale_members_and_removes_them(open_store: OpenStore) -> None:
    config = PoolConfig(keep_alive_ttl_s=100.0, max_age_s=140.0, warm_timeout_s=50.0)
    store = open_store(config, lease_ttl_s=10_000.0)
    a = store.join("a", now=0.0).controller_id
    for member_id in ("straggler", "idle", "old", "claimed"):
        store.register(member_id, KEY, a, now=0.0)
    store.mark_ready("claimed", 1.0)
    assert store.claim(KEY, a, now=2.0).member_id == "claimed"
    store.mark_ready("idle", 10.0)  # idle past its TTL from 110
    store.mark_ready("old", 45.0)  # idle past its TTL from 145, but past max age from 140

    first = store.reap(a, now=55.0)
    assert (first.errored, first.recycled) == (("straggler",), ())
    assert [(m.member_id, m.member.reason) for m in first.removed] == [("straggler", "warmup timed out")]

    second = store.reap(a, now=120.0)
    assert (second.errored, second.recycled) == ((), ("idle",))
    assert [(m.member_id, m.member.reason) for m in second.removed] == [("idle", "keep-alive TTL expired")]

    assert store.reap(a, now=139.0).recycled == ()
    third = store.reap(a, now=142.0)
    assert third.recycled == ("old",)
    assert [(m.member_id, m.member.reason) for m in third.removed] == [("old", "maximum age reached")]
    assert [(m.member_id, m.state) for m in store.members()] == [("claimed", C)]  # the fleet's now


def test_the_owner_reaps_its_own_terminal_members(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    b = store.join("b", now=0.0).controller_id
    store.register("a-1", KEY, a, now=0.0)
    store.mark_errored("a-1", "process died")
    assert store.reap(b, now=1.0).removed == ()  # a lives: a stops its own process
    assert store.get("a-1").state is E
    removed = store.reap(a, now=1.0).removed
    assert [(m.member_id, m.owner, m.member.reason) for m in removed] == [("a-1", a, "process died")]
    with pytest.raises(UnknownMember):
        store.get("a-1")


def test_a_lapsed_lease_fences_the_controller_and_its_members_are_reaped(open_store: OpenStore) -> None:
    store = open_store(lease_ttl_s=10.0)
    dead = store.join("dead", now=0.0).controller_id
    ready(store, dead, KEY, "d-ready", "d-claimed")
    store.register("d-warming", KEY, dead, now=0.0)
    store.claim(KEY, dead, now=2.0)  # oldest first: d-claimed and d-ready tie on ready_at
    live = store.join("live", now=5.0).controller_id
    store.heartbeat(live, 12.0)

    with pytest.raises(LeaseExpired, match="join again"):
        store.heartbeat(dead, now=11.0)
    with pytest.raises(LeaseExpired):
        store.claim(KEY, dead, now=11.0)
    with pytest.raises(LeaseExpired):
        store.register("late", KEY, dead, now=11.0)

    report = store.reap(live, now=12.0)
    assert report.expired_leases == (dead,)
    claimed = "d-claimed"
    assert set(report.errored) == {"d-ready", "d-warming"}
    assert report.recycled == (claimed,)
    assert {m.member_id for m in report.removed} == {"d-ready", "d-warming", claimed}
    assert all("lease expired" in m.member.reason for m in report.removed)
    assert store.members() == ()
    with pytest.raises(LeaseExpired, match="unknown or was reaped"):
        store.heartbeat(dead, now=13.0)


def test_heartbeat_keeps_a_lease_alive(open_store: OpenStore) -> None:
    store = open_store(lease_ttl_s=10.0)
    a = store.join("a", now=0.0).controller_id
    ready(store, a, KEY, "m")
    assert store.heartbeat(a, now=8.0).expires_at == 18.0
    assert store.reap(a, now=15.0).expired_leases == ()
    assert store.claim(KEY, a, now=15.0).member_id == "m"


def test_top_up_fills_the_deficit_within_the_configured_sizes(open_store: OpenStore) -> None:
    store = open_store(PoolConfig(target_size=2, min_size=1, max_size=4))
    a = store.join("a", now=0.0).controller_id
    started = store.top_up(KEY, 3, a, now=0.0)
    assert len(set(started)) == 3
    assert store.counts(KEY)[W] == 3
    store.mark_ready(started[0], 1.0)
    assert store.top_up(KEY, 3, a, now=1.0) == ()  # WARMING + READY already make 3
    store.claim(KEY, a, now=2.0)  # a claimed member has left the pool
    assert len(store.top_up(KEY, 3, a, now=2.0)) == 1
    assert len(store.top_up(KEY, 99, a, now=3.0)) == 1  # clamped to max_size 4
    other = MatchKey.of("sha256:aaaa", "v2", "cpu")
    assert len(store.top_up(other, 0, a, now=3.0)) == 1  # clamped up to min_size 1


def test_own_claims_and_top_ups_see_only_the_controllers_own_standbys(open_store: OpenStore) -> None:
    store = open_store(PoolConfig(target_size=1, max_size=4))
    a = store.join("a", now=0.0).controller_id
    b = store.join("b", now=0.0).controller_id
    ready(store, a, KEY, "a-1")
    with pytest.raises(PoolEmpty):
        store.claim(KEY, b, now=2.0, own=True)  # a's READY member is not b's to promote
    assert store.top_up(KEY, 1, b, now=2.0) == ()  # the shared count: a's standby fills it
    (mine,) = store.top_up(KEY, 1, b, now=2.0, own=True)  # b's own count: none yet
    assert store.top_up(KEY, 1, b, now=2.0, own=True) == ()
    store.mark_ready(mine, 3.0)
    assert store.claim(KEY, b, now=4.0, own=True).member_id == mine
    assert store.get("a-1").state is R
    assert store.claim(KEY, b, now=5.0).member_id == "a-1"  # without own: anyone's


def test_drain_retires_standbys_and_stops_replenishing_until_activated(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    ready(store, a, KEY, "ready", "serving")
    store.register("warming", KEY, a, now=0.0)
    assert store.claim(KEY, a, now=2.0).member_id == "ready"  # ties break by id: "ready" < "serving"
    assert set(store.drain(KEY)) == {"serving", "warming"}
    assert store.get("ready").state is C  # the claimed one finishes serving
    assert store.top_up(KEY, 2, a, now=3.0) == ()
    with pytest.raises(PoolDraining):
        store.register("new", KEY, a, now=3.0)
    assert {m.member_id for m in store.reap(a, now=3.0).removed} == {"serving", "warming"}
    store.activate(KEY)
    assert len(store.top_up(KEY, 2, a, now=4.0)) == 2


def test_leave_hands_back_every_member_the_controller_ran(open_store: OpenStore) -> None:
    store = open_store()
    a = store.join("a", now=0.0).controller_id
    b = store.join("b", now=0.0).controller_id
    ready(store, a, KEY, "a-1", "a-2")
    ready(store, b, KEY, "b-1")
    assert {m.member_id for m in store.leave(a)} == {"a-1", "a-2"}
    assert [m.member_id for m in store.members()] == ["b-1"]
    with pytest.raises(LeaseExpired):
        store.heartbeat(a, now=1.0)


def test_books_are_shared_by_every_connection_to_the_store(open_store: OpenStore) -> None:
    first, second = open_store(), open_store()
    a = first.join("a", now=0.0).controller_id
    b = second.join("b", now=0.0).controller_id
    ready(first, a, KEY, "m")
    assert second.claim(KEY, b, now=2.0).member_id == "m"
    assert first.get("m").owner == b
    with pytest.raises(PoolEmpty):
        first.claim(KEY, a, now=3.0)
