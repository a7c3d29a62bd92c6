"""The warm pool's state machine, atomic claims, recycling and drain."""

from __future__ import annotations

import threading

import pytest

from warmgate.autoscaling.pool import (
    IllegalTransition,
    MemberState,
    PoolConfig,
    PoolEmpty,
    PoolMode,
    UnknownMember,
    WarmPool,
)
from warmgate.errors import ConfigError


def filled(size: int, **overrides: float) -> WarmPool:
    """A pool whose ``size`` members all became READY at t=0."""
    config = PoolConfig(target_size=size, max_size=max(size, 8), **overrides)  # type: ignore[arg-type]
    pool = WarmPool(config)
    for member_id in pool.reap(0.0).started:
        pool.mark_ready(member_id, 0.0)
    return pool


def test_reap_fills_the_deficit_with_warming_members() -> None:
    pool = WarmPool(PoolConfig(target_size=3))
    report = pool.reap(0.0)
    assert len(report.started) == 3
    assert pool.count(MemberState.WARMING) == 3
    assert pool.reap(1.0).started == ()  # nothing missing any more


def test_claim_hands_out_the_oldest_ready_member() -> None:
    pool = WarmPool(PoolConfig(target_size=2))
    first, second = pool.reap(0.0).started
    pool.mark_ready(second, 5.0)
    pool.mark_ready(first, 7.0)
    claimed = pool.claim(10.0)
    assert claimed.member_id == second
    assert claimed.state is MemberState.CLAIMED
    assert claimed.claimed_at == 10.0


def test_claim_fails_fast_when_nothing_is_ready() -> None:
    pool = WarmPool(PoolConfig(target_size=1))
    pool.reap(0.0)  # one member, still warming
    with pytest.raises(PoolEmpty, match="cold-start"):
        pool.claim(1.0)


def move(pool: WarmPool, member_id: str, state: MemberState) -> None:
    if state is MemberState.READY:
        pool.mark_ready(member_id, 1.0)
    elif state is MemberState.CLAIMED:
        assert pool.claim(1.0).member_id == member_id
    elif state is MemberState.ERRORED:
        pool.mark_errored(member_id, "boom")
    else:
        pool.release(member_id)


R, C, E, D = MemberState.READY, MemberState.CLAIMED, MemberState.ERRORED, MemberState.DRAINING


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ((R,), R),  # ready -> ready
        ((R, C), R),  # claimed never goes back to ready
        ((R, C), E),  # a claimed member is the fleet's; it only drains
        ((E,), R),  # errored is terminal
        ((E,), D),
        ((D,), R),  # draining is terminal
        ((D,), E),
    ],
)
def test_illegal_moves_are_rejected(path: tuple[MemberState, ...], illegal: MemberState) -> None:
    pool = WarmPool(PoolConfig(target_size=1))
    (member_id,) = pool.reap(0.0).started
    for state in path:
        move(pool, member_id, state)
    with pytest.raises(IllegalTransition):
        move(pool, member_id, illegal)
    assert pool.get(member_id).state is path[-1]  # unchanged


def test_illegal_transition_names_the_allowed_moves() -> None:
    pool = filled(1)
    (member,) = pool.members()
    pool.claim(1.0)
    with pytest.raises(IllegalTransition, match="claimed -> ready") as info:
        pool.mark_ready(member.member_id, 2.0)
    assert "draining" in str(info.value)


def test_concurrent_claims_never_hand_out_a_member_twice() -> None:
    pool = filled(40)
    threads_n = 16
    barrier = threading.Barrier(threads_n)
    claimed: list[list[str]] = [[] for _ in range(threads_n)]
    empties = [0] * threads_n

    def worker(slot: int) -> None:
        barrier.wait()
        while True:
            try:
                claimed[slot].append(pool.claim(1.0).member_id)
            except PoolEmpty:
                empties[slot] += 1
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [m for got in claimed for m in got]
    assert len(every) == 40
    assert len(set(every)) == 40
    assert empties == [1] * threads_n  # each thread ended on a fast, clean PoolEmpty
    assert pool.count(MemberState.CLAIMED) == 40


def test_keep_alive_ttl_recycles_idle_ready_members() -> None:
    pool = filled(1, keep_alive_ttl_s=100.0, max_age_s=1000.0)
    (old,) = pool.members()
    assert pool.reap(100.0).recycled == ()  # exactly at the TTL: still kept
    report = pool.reap(100.5)
    assert report.recycled == (old.member_id,)
    assert old.member_id in report.removed
    assert len(report.started) == 1  # replaced straight away
    assert [m.state for m in pool.members()] == [MemberState.WARMING]


def test_max_age_recycles_even_recently_ready_members() -> None:
    pool = WarmPool(PoolConfig(target_size=1, keep_alive_ttl_s=1000.0, max_age_s=100.0))
    (member_id,) = pool.reap(0.0).started
    pool.mark_ready(member_id, 90.0)  # ready late: idle only 11 s at t=101, but 101 s old
    report = pool.reap(101.0)
    assert report.recycled == (member_id,)


def test_warming_past_its_timeout_is_errored_and_replaced() -> None:
    pool = WarmPool(PoolConfig(target_size=1, warm_timeout_s=60.0))
    (member_id,) = pool.reap(0.0).started
    report = pool.reap(61.0)
    assert report.errored == (member_id,)
    assert member_id in report.removed
    assert len(report.started) == 1
    with pytest.raises(UnknownMember):
        pool.get(member_id)


def test_drain_releases_standbys_and_lets_claimed_members_finish() -> None:
    pool = filled(3)
    claimed = pool.claim(1.0)
    pool.reap(1.0)  # tops the deficit up with one warming member
    leaving = pool.drain()
    assert len(leaving) == 3  # two ready and one warming
    assert pool.mode is PoolMode.DRAINING
    assert pool.get(claimed.member_id).state is MemberState.CLAIMED
    report = pool.reap(2.0)
    assert set(report.removed) == set(leaving)
    assert report.started == ()  # a draining pool replenishes nothing
    pool.release(claimed.member_id)
    assert pool.reap(3.0).removed == (claimed.member_id,)
    assert pool.members() == ()


def test_follow_keeps_prepared_capacity() -> None:
    pool = WarmPool(PoolConfig(target_size=1, max_size=4, max_prepared=3))
    assert pool.follow(2) == 1  # floor of two hot: one standby
    assert pool.follow(5) == 0  # the fleet is larger: no standby
    assert pool.follow(-10) == 4  # clamped to max_size
    assert WarmPool(PoolConfig(target_size=2)).follow(9) == 2  # no max_prepared: fixed


def test_sizes_are_validated() -> None:
    with pytest.raises(ConfigError, match="min_size <= target_size"):
        PoolConfig(target_size=5, max_size=2)


def test_standbys_over_a_lowered_target_are_retired_warming_first_then_newest() -> None:
    pool = WarmPool(PoolConfig(target_size=4, max_size=4))
    first, second, third, fourth = pool.reap(0.0).started
    for member_id in (first, second, third):
        pool.mark_ready(member_id, 5.0)  # fourth is still WARMING
    pool.resize(1)
    report = pool.reap(10.0)
    assert set(report.removed) == {fourth, third, second}  # the warming one, then the newest
    assert [m.member_id for m in pool.members()] == [first]
    assert pool.claim(11.0).member_id == first
    assert pool.reap(12.0).removed == ()  # nothing over the target any more


def test_an_adopted_replica_is_a_warming_standby_that_fills_the_deficit() -> None:
    pool = filled(1)
    claimed = pool.claim(5.0)
    adopted = pool.adopt("replica-3", 5.0, 3.0)  # a cold start (launched at 3) traded for the claimed standby
    assert adopted is not None and adopted.state is MemberState.WARMING
    assert adopted.created_at == 3.0  # its age counts from its launch
    assert pool.reap(5.0).started == ()  # it is the replacement: nothing new launched
    pool.mark_ready("replica-3", 9.0)
    assert pool.claim(10.0).member_id == "replica-3"
    assert pool.adopt(claimed.member_id, 10.0, 10.0) is None  # already booked


def test_a_draining_pool_adopts_nothing() -> None:
    pool = filled(1)
    pool.drain()
    assert pool.adopt("replica-3", 1.0, 1.0) is None
    assert "replica-3" not in {m.member_id for m in pool.members()}
