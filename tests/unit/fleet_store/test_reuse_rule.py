"""The pure pool's reuse rule and per-key keep-alive, which the stores apply."""

from __future__ import annotations

import pytest

from warmgate.autoscaling.pool import (
    IllegalTransition,
    Member,
    MemberState,
    PoolConfig,
    expiry,
    reuse_refusal,
)

CONFIG = PoolConfig(max_size=3, keep_alive_ttl_s=100.0, max_age_s=1000.0)
CLAIMED = Member("m", MemberState.CLAIMED, created_at=0.0, ready_at=1.0, claimed_at=2.0)
READY = Member("r", MemberState.READY, created_at=0.0, ready_at=1.0)
WARMING = Member("w", MemberState.WARMING, created_at=0.0)


def refusal(member: Member = CLAIMED, now: float = 10.0, **overrides: object) -> str | None:
    args: dict[str, object] = {"keep_alive_ttl_s": 100.0, "accepting": True, "standby": 0, **overrides}
    return reuse_refusal(member, CONFIG, now, **args)  # type: ignore[arg-type]


def test_a_claimed_member_is_reused_when_nothing_forbids_it() -> None:
    assert refusal() is None
    assert refusal(standby=2) is None


@pytest.mark.parametrize(
    ("overrides", "now", "reason"),
    [
        ({"accepting": False}, 10.0, "released: the pool is draining or archived"),
        ({"keep_alive_ttl_s": 0.0}, 10.0, "released: keep-alive TTL is 0"),
        ({}, 1000.0, "released: maximum age reached"),
        ({"standby": 3}, 10.0, "released: the pool is full (3 standbys, max_size 3)"),
    ],
)
def test_reuse_is_refused_for_each_documented_reason(
    overrides: dict[str, object], now: float, reason: str
) -> None:
    assert refusal(now=now, **overrides) == reason


def test_only_a_claimed_member_can_be_released() -> None:
    with pytest.raises(IllegalTransition, match="only a claimed member"):
        refusal(READY)


def test_a_per_key_keep_alive_overrides_the_config() -> None:
    assert expiry(READY, CONFIG, now=150.0) == (MemberState.DRAINING, "keep-alive TTL expired")
    assert expiry(READY, CONFIG, now=150.0, keep_alive_ttl_s=500.0) is None
    assert expiry(READY, CONFIG, now=150.0, keep_alive_ttl_s=None) == expiry(READY, CONFIG, now=150.0)


def test_a_zero_keep_alive_ends_every_standby_but_no_claimed_member() -> None:
    for member in (READY, WARMING):
        assert expiry(member, CONFIG, now=2.0, keep_alive_ttl_s=0.0) == (
            MemberState.DRAINING,
            "keep-alive TTL is 0",
        )
    assert expiry(CLAIMED, CONFIG, now=2.0, keep_alive_ttl_s=0.0) is None
