"""The fleet's store-backed pool (``StoredPool``) on a real SQLite store: the lease, what a reap
hands the fleet to stop, and own claims. The fleet itself is in tests/e2e/test_fleet_store.py."""

from __future__ import annotations

import pytest

from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolEmpty, UnknownMember, WarmPool
from warmgate.fleet.store import MatchKey
from warmgate.fleet.store.sqlite import SqlitePoolStore
from warmgate.fleet.stored_pool import StoredPool

KEY = MatchKey.of("sha256:model", "v1", "cpu", {"max_batch": "16"})


def test_a_lapsed_lease_rejoins_and_the_reap_hands_back_only_this_fleets_members() -> None:
    store = SqlitePoolStore(":memory:", PoolConfig(target_size=1, max_size=1), lease_ttl_s=3.0)
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=3.0)
    first = pool.controller_id
    (mine,) = pool.reap(0.0).started
    pool.mark_ready(mine, 0.5)
    other = store.join("other", 0.0).controller_id
    store.register("theirs", KEY, other, 0.0)
    with pytest.raises(PoolEmpty):
        StoredPool(store, KEY, "fleet-2", 0.5, lease_ttl_s=3.0).claim(1.0)  # not its own standby

    report = pool.reap(10.0)  # both leases lapsed at 3.0: the fleet joins again
    assert pool.controller_id != first
    assert set(report.errored) == {mine, "theirs"}
    assert report.removed == (mine,)  # "theirs" left the books, but is not this fleet's process
    (fresh,) = report.started
    assert {m.member_id: m.state for m in pool.members()} == {fresh: MemberState.WARMING}
    assert [m.member_id for m in store.members(KEY)] == [fresh]


def test_follow_sets_the_target_and_surplus_leaves_as_from_the_in_memory_pool() -> None:
    config = PoolConfig(target_size=1, max_size=3, max_prepared=4)
    store = SqlitePoolStore(":memory:", config)
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=30.0)
    assert pool.follow(2) == 2
    ready, warming = pool.reap(0.0).started
    pool.mark_ready(ready, 0.5)
    assert pool.follow(3) == 1
    report = pool.reap(1.0)  # one over the target: the WARMING standby leaves first
    assert report.started == () and report.removed == (warming,)
    assert [m.member_id for m in pool.members()] == [ready]
    assert pool.follow(9) == 0  # clamped to min_size
    assert pool.claim(3.0).member_id == ready  # a claimed member is no standby: not surplus
    assert pool.reap(3.5).removed == ()
    assert pool.release(ready).state is MemberState.DRAINING
    assert pool.reap(4.0).removed == (ready,)


def test_resize_retires_the_newest_ready_standbys_over_the_target() -> None:
    store = SqlitePoolStore(":memory:", PoolConfig(target_size=3, max_size=3))
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=30.0)
    started = pool.reap(0.0).started
    for i, member in enumerate(started):
        pool.mark_ready(member, 1.0 + i)
    assert pool.resize(1) == 1
    removed = pool.reap(5.0).removed  # created together: any two of the three
    assert len(removed) == 2 and set(removed) < set(started)
    (kept,) = pool.members()
    assert kept.state is MemberState.READY and kept.member_id not in removed


def test_an_operators_replenish_floor_is_kept_not_retired_and_relaunched_every_reap() -> None:
    store = SqlitePoolStore(":memory:", PoolConfig(target_size=1, max_size=4))
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=30.0)
    (first,) = pool.reap(0.0).started
    store.replenish(KEY, 3)  # `warmgate pool replenish --min 3`: above the fleet's own target
    topped = pool.reap(1.0)
    assert len(topped.started) == 2 and topped.removed == ()
    for tick in (2.0, 3.0, 4.0):
        report = pool.reap(tick)
        assert report.started == () and report.removed == ()
    assert sorted(m.member_id for m in pool.members()) == sorted((first, *topped.started))


def test_an_adopted_replica_is_booked_as_this_fleets_standby_or_refused() -> None:
    store = SqlitePoolStore(":memory:", PoolConfig(target_size=1, max_size=2))
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=30.0)
    (standby,) = pool.reap(0.0).started
    pool.mark_ready(standby, 1.0)
    pool.claim(2.0)
    adopted = pool.adopt("replica-3", 2.0, 1.5)  # a cold start traded for the claimed standby
    assert adopted is not None and adopted.state is MemberState.WARMING
    assert pool.get("replica-3").created_at == 1.5  # its age counts from its launch, in the store too
    assert pool.reap(2.0).started == ()  # it is the replacement: nothing new launched
    pool.mark_ready("replica-3", 3.0)
    assert pool.claim(4.0).member_id == "replica-3"  # this fleet's own, under its key
    assert pool.adopt("replica-3", 5.0, 5.0) is None  # the id is booked: the fleet stops it instead


def test_another_fleets_member_of_the_same_id_is_not_this_fleets_to_release() -> None:
    """Fleets name their cold starts alike (replica-1, replica-2, ...) and a swap pools one
    under that name: a second fleet on the same store that removes its own replica-2 must
    not see, nor release, the first fleet's member replica-2."""
    store = SqlitePoolStore(":memory:", PoolConfig(target_size=1, max_size=2))
    a = StoredPool(store, KEY, "fleet-a", 0.0, lease_ttl_s=30.0)
    b = StoredPool(store, KEY, "fleet-b", 0.0, lease_ttl_s=30.0)
    assert a.adopt("replica-2", 1.0, 1.0) is not None
    with pytest.raises(UnknownMember):
        b.get("replica-2")
    assert a.get("replica-2").state is MemberState.WARMING
    assert b.adopt("replica-2", 2.0, 2.0) is None  # the id is taken: fleet b stops its cold start


@pytest.mark.parametrize("reuse", [True, False])
def test_a_reusing_pool_wants_its_missing_standbys_as_the_in_memory_pool_does(reuse: bool) -> None:
    config = PoolConfig(target_size=0, max_size=4, max_prepared=4, reuse_on_scale_in=reuse)
    store = SqlitePoolStore(":memory:", config)
    pool = StoredPool(store, KEY, "fleet", 0.0, lease_ttl_s=30.0)
    memory = WarmPool(config)
    for books in (pool, memory):
        books.follow(2)  # the fleet at 2: keep 4 - 2 standbys
        assert books.wanted() == (2 if reuse else 0)
        (member,) = books.reap(0.0).started[:1]
        assert books.wanted() == 0  # the reap launched both: nothing to reuse
        books.follow(1)  # scaled in further: one more wanted, one reused replica fills it
        assert books.wanted() == (1 if reuse else 0)
        if reuse:
            assert books.adopt("replica-7", 1.0, launched_at=0.0) is not None
            assert books.wanted() == 0
        assert member in {m.member_id for m in books.members()}
    # another controller's standbys of the same key are not this fleet's
    other = store.join("other", 0.0).controller_id
    store.register("theirs", KEY, other, 0.0)
    pool.follow(0)
    assert pool.wanted() == (1 if reuse else 0)
