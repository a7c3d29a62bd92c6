"""A warm pool of pre-warmed standby replicas.

Members move ``WARMING → READY → CLAIMED``; a warming member that misses its deadline or
fails goes ``ERRORED``; ready members past their keep-alive TTL or maximum age, and every
member when the pool drains, go ``DRAINING``. ``ERRORED`` and ``DRAINING`` are terminal:
the next :meth:`WarmPool.reap` removes them and reports them so the caller stops them.

The pool only keeps the books: the caller launches and stops processes. Every method takes
``now`` (seconds on any monotonic clock) instead of reading a clock, and every mutation
holds one lock, so :meth:`WarmPool.claim` is atomic across threads.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from dataclasses import dataclass
from enum import Enum

from warmgate.errors import ConfigError, WarmgateError


class MemberState(Enum):
    WARMING = "warming"
    READY = "ready"
    CLAIMED = "claimed"
    ERRORED = "errored"
    DRAINING = "draining"


class PoolMode(Enum):
    ACTIVE = "active"  # replenishes to its target size
    DRAINING = "draining"  # replenishes nothing; claimed members finish


_TRANSITIONS: dict[MemberState, frozenset[MemberState]] = {
    MemberState.WARMING: frozenset({MemberState.READY, MemberState.ERRORED, MemberState.DRAINING}),
    MemberState.READY: frozenset({MemberState.CLAIMED, MemberState.ERRORED, MemberState.DRAINING}),
    MemberState.CLAIMED: frozenset({MemberState.DRAINING}),
    MemberState.ERRORED: frozenset(),
    MemberState.DRAINING: frozenset(),
}


class IllegalTransition(WarmgateError):
    """A pool member was asked to move along an edge the state machine does not have."""

    code = "illegal_transition"


class PoolEmpty(WarmgateError):
    """No member is READY: the caller should cold-start a replica instead."""

    status = 503
    code = "pool_empty"


class UnknownMember(WarmgateError):
    code = "unknown_member"


@dataclass(frozen=True)
class PoolConfig:
    """Sizes count standbys (WARMING + READY); CLAIMED members have left the pool.

    ``max_prepared`` follows EC2 Auto Scaling warm pools' ``MaxGroupPreparedCapacity``: when
    set, :meth:`WarmPool.follow` keeps ``max_prepared - fleet target`` standbys (clamped to
    ``[min_size, max_size]``), so the pool tops up the floor's headroom and shrinks while the
    fleet itself is larger. When unset the pool keeps ``target_size``.
    """

    target_size: int = 2
    min_size: int = 0
    max_size: int = 8
    max_prepared: int | None = None
    keep_alive_ttl_s: float = 1800.0
    max_age_s: float = 4 * 3600.0
    warm_timeout_s: float = 600.0
    # EC2 Auto Scaling's InstanceReusePolicy ReuseOnScaleIn: a replica the policy scales in goes
    # back to the pool as a standby while the pool is short, instead of leaving.
    reuse_on_scale_in: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.target_size <= self.max_size:
            raise ConfigError(
                "pool sizes must satisfy 0 <= min_size <= target_size <= max_size, got "
                f"min={self.min_size} target={self.target_size} max={self.max_size}"
            )
        for name in ("keep_alive_ttl_s", "max_age_s", "warm_timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0 seconds, got {getattr(self, name)}")


@dataclass(frozen=True)
class Member:
    member_id: str
    state: MemberState
    created_at: float
    ready_at: float | None = None
    claimed_at: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class ReapReport:
    """What one reaper step did: launch ``started``, stop ``removed``."""

    started: tuple[str, ...] = ()
    errored: tuple[str, ...] = ()
    recycled: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def check_move(member: Member, state: MemberState) -> None:
    """Raise :class:`IllegalTransition` unless ``member`` may move to ``state``."""
    if state not in _TRANSITIONS[member.state]:
        raise IllegalTransition(
            f"pool member {member.member_id}: {member.state.value} -> {state.value} is not "
            f"allowed; from {member.state.value} it may go to "
            f"{sorted(s.value for s in _TRANSITIONS[member.state]) or 'nothing (terminal)'}"
        )


def expiry(
    member: Member, config: PoolConfig, now: float, *, keep_alive_ttl_s: float | None = None
) -> tuple[MemberState, str] | None:
    """The reaper's rule for one member: ``(new state, reason)``, or ``None`` to keep it.

    A WARMING member past ``warm_timeout_s`` errors; a READY one idle past its keep-alive TTL,
    or older than ``max_age_s``, drains (is recycled). Every other member is left alone.
    ``keep_alive_ttl_s`` overrides the config's TTL (a pool store keeps one per match key);
    a TTL of 0 switches the pool off: every standby, WARMING or READY, drains.
    """
    ttl = config.keep_alive_ttl_s if keep_alive_ttl_s is None else keep_alive_ttl_s
    if ttl <= 0 and member.state in (MemberState.WARMING, MemberState.READY):
        return MemberState.DRAINING, "keep-alive TTL is 0"
    age = now - member.created_at
    if member.state is MemberState.WARMING and age > config.warm_timeout_s:
        return MemberState.ERRORED, "warmup timed out"
    if member.state is MemberState.READY:
        idle = now - (member.ready_at if member.ready_at is not None else now)
        if idle > ttl:
            return MemberState.DRAINING, "keep-alive TTL expired"
        if age > config.max_age_s:
            return MemberState.DRAINING, "maximum age reached"
    return None


def reuse_refusal(
    member: Member,
    config: PoolConfig,
    now: float,
    *,
    keep_alive_ttl_s: float,
    accepting: bool,
    standby: int,
) -> str | None:
    """Whether a CLAIMED member whose replica was scaled in may go back to READY (EC2 warm
    pools' ``ReuseOnScaleIn``; SageMaker's reuse that renews the keep-alive): ``None`` if it
    may, else the reason it drains instead.

    It may when its pool is ``accepting`` members (active, not archived), the keep-alive TTL
    is above 0, it is younger than ``max_age_s`` (counted from its creation: reuse renews the
    keep-alive, never the age), and the pool's ``standby`` members (WARMING + READY) are
    fewer than ``max_size``.
    """
    if member.state is not MemberState.CLAIMED:
        raise IllegalTransition(
            f"pool member {member.member_id} is {member.state.value}: only a claimed member is released"
        )
    if not accepting:
        return "released: the pool is draining or archived"
    if keep_alive_ttl_s <= 0:
        return "released: keep-alive TTL is 0"
    if now - member.created_at >= config.max_age_s:
        return "released: maximum age reached"
    if standby >= config.max_size:
        return f"released: the pool is full ({standby} standbys, max_size {config.max_size})"
    return None


class WarmPool:
    """Thread-safe books of warm standbys. See the module docstring for the state machine."""

    def __init__(self, config: PoolConfig, id_prefix: str = "pool") -> None:
        self._config = config
        self._target = config.target_size
        self._mode = PoolMode.ACTIVE
        self._members: dict[str, Member] = {}
        self._ids = (f"{id_prefix}-{n}" for n in itertools.count(1))
        self._lock = threading.Lock()

    @property
    def config(self) -> PoolConfig:
        return self._config

    @property
    def mode(self) -> PoolMode:
        return self._mode

    @property
    def target_size(self) -> int:
        return self._target

    def resize(self, target: int) -> int:
        """Set the target size, clamped to ``[min_size, max_size]``; return what was set."""
        with self._lock:
            self._target = min(max(target, self._config.min_size), self._config.max_size)
            return self._target

    def follow(self, fleet_target: int) -> int:
        """Resize to ``max_prepared - fleet_target`` when ``max_prepared`` is set."""
        if self._config.max_prepared is None:
            return self._target
        return self.resize(self._config.max_prepared - fleet_target)

    def wanted(self) -> int:
        """Replicas scaled in that the pool would reuse: the standbys (WARMING + READY) missing
        from the target size; 0 unless ``reuse_on_scale_in`` and ACTIVE."""
        with self._lock:
            if not self._config.reuse_on_scale_in or self._mode is not PoolMode.ACTIVE:
                return 0
            return max(0, self._target - self._standby())

    def members(self) -> tuple[Member, ...]:
        with self._lock:
            return tuple(self._members.values())

    def get(self, member_id: str) -> Member:
        with self._lock:
            return self._get(member_id)

    def count(self, state: MemberState) -> int:
        with self._lock:
            return sum(1 for m in self._members.values() if m.state is state)

    @property
    def standby(self) -> int:
        """Members that cost a replica while waiting: WARMING + READY."""
        with self._lock:
            return self._standby()

    def mark_ready(self, member_id: str, now: float) -> Member:
        return self._move(member_id, MemberState.READY, ready_at=now)

    def mark_errored(self, member_id: str, reason: str) -> Member:
        return self._move(member_id, MemberState.ERRORED, reason=reason)

    def release(self, member_id: str) -> Member:
        """A claimed member is done serving: it drains and is removed on the next reap."""
        return self._move(member_id, MemberState.DRAINING, reason="released")

    def give_back(self, member_id: str, now: float) -> Member:
        """A CLAIMED member whose replica is scaled in: READY again when the pool may reuse it
        (:func:`reuse_refusal`; the keep-alive renewed, as the pool store's ``release`` does),
        else DRAINING with the reason."""
        with self._lock:
            member = self._get(member_id)
            refusal = reuse_refusal(
                member,
                self._config,
                now,
                keep_alive_ttl_s=self._config.keep_alive_ttl_s,
                accepting=self._mode is PoolMode.ACTIVE,
                standby=self._standby(),
            )
            if refusal is not None:
                return self._set(member, MemberState.DRAINING, reason=refusal)
            reused = dataclasses.replace(
                member, state=MemberState.READY, ready_at=now, claimed_at=None, reason="reused"
            )
            self._members[member_id] = reused
            return reused

    def adopt(self, member_id: str, now: float, launched_at: float) -> Member | None:
        """Book a replica that is already starting (a cold start traded for a READY standby)
        as a WARMING member under its own id, so it becomes the pool's replacement standby
        instead of a fresh launch. ``None`` when the pool takes no members (draining) or the id
        is booked already: the caller stops the replica instead. ``created_at`` is
        ``launched_at``, so the warm timeout and the maximum age count from its launch."""
        with self._lock:
            if self._mode is not PoolMode.ACTIVE or member_id in self._members:
                return None
            member = Member(member_id, MemberState.WARMING, created_at=launched_at)
            self._members[member_id] = member
            return member

    def claim(self, now: float) -> Member:
        """Hand out the oldest READY member, atomically; raise :class:`PoolEmpty` if none."""
        with self._lock:
            ready = [m for m in self._members.values() if m.state is MemberState.READY]
            if not ready:
                raise PoolEmpty(
                    f"warm pool has no READY member ({self._standby()} warming or ready of "
                    f"target {self._target}); cold-start a replica instead"
                )
            oldest = min(ready, key=lambda m: (m.ready_at or m.created_at, m.member_id))
            return self._set(oldest, MemberState.CLAIMED, claimed_at=now)

    def drain(self) -> tuple[str, ...]:
        """Stop replenishing; WARMING and READY members drain, CLAIMED ones finish serving."""
        with self._lock:
            self._mode = PoolMode.DRAINING
            leaving = [
                m for m in self._members.values() if m.state in (MemberState.WARMING, MemberState.READY)
            ]
            for member in leaving:
                self._set(member, MemberState.DRAINING, reason="pool draining")
            return tuple(m.member_id for m in leaving)

    def reap(self, now: float) -> ReapReport:
        """Error stragglers, recycle stale members, retire standbys over the target (WARMING
        first, then READY, the newest first), remove finished ones, top up the deficit."""
        cfg = self._config
        with self._lock:
            errored: list[str] = []
            recycled: list[str] = []
            for member in list(self._members.values()):
                verdict = expiry(member, cfg, now)
                if verdict is None:
                    continue
                state, reason = verdict
                self._set(member, state, reason=reason)
                (errored if state is MemberState.ERRORED else recycled).append(member.member_id)
            removed = [
                m.member_id
                for m in self._members.values()
                if m.state in (MemberState.ERRORED, MemberState.DRAINING)
            ]
            for member_id in removed:
                del self._members[member_id]
            surplus = self._standby() - self._target
            for member in self._surplus_order()[: max(0, surplus)]:
                self._set(member, MemberState.DRAINING, reason="surplus over the target size")
                recycled.append(member.member_id)
                removed.append(member.member_id)
                del self._members[member.member_id]
            started: list[str] = []
            if self._mode is PoolMode.ACTIVE:
                for _ in range(max(0, self._target - self._standby())):
                    member = Member(next(self._ids), MemberState.WARMING, created_at=now)
                    self._members[member.member_id] = member
                    started.append(member.member_id)
            return ReapReport(tuple(started), tuple(errored), tuple(recycled), tuple(removed))

    def _surplus_order(self) -> list[Member]:
        """Standbys to retire first: WARMING ones (not yet useful), then READY ones; the
        newest of each first."""
        newest = list(reversed(self._members.values()))
        warming = [m for m in newest if m.state is MemberState.WARMING]
        return warming + [m for m in newest if m.state is MemberState.READY]

    def _standby(self) -> int:
        live = (MemberState.WARMING, MemberState.READY)
        return sum(1 for m in self._members.values() if m.state in live)

    def _get(self, member_id: str) -> Member:
        try:
            return self._members[member_id]
        except KeyError:
            raise UnknownMember(f"no pool member {member_id!r} (already removed?)") from None

    def _move(
        self,
        member_id: str,
        state: MemberState,
        *,
        ready_at: float | None = None,
        reason: str = "",
    ) -> Member:
        with self._lock:
            return self._set(self._get(member_id), state, ready_at=ready_at, reason=reason)

    def _set(
        self,
        member: Member,
        state: MemberState,
        *,
        ready_at: float | None = None,
        claimed_at: float | None = None,
        reason: str = "",
    ) -> Member:
        check_move(member, state)
        updated = dataclasses.replace(
            member,
            state=state,
            ready_at=ready_at if ready_at is not None else member.ready_at,
            claimed_at=claimed_at if claimed_at is not None else member.claimed_at,
            reason=reason or member.reason,
        )
        self._members[member.member_id] = updated
        return updated
