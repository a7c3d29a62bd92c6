"""The one actuation sequence: decision → replace → drain or reuse → claim or cold-start → swap →
follow → reap.

:func:`actuate` applies a :class:`~warmgate.autoscaling.model.Decision` to whatever implements
:class:`Actuator`: the simulator's virtual replicas and the local fleet's real processes behind
HAProxy (``warmgate.fleet.control``). Both run these exact steps, so what the simulator shows is
what the fleet does. The pool's books are kept here too; the actuator only acts.

Steps, in order:

1. **replace**: remove each FAILED replica the decision names (its capacity is in ``start``);
2. **drain or reuse**: the pool first resizes to what the decision wants (step 5's size).
   While it is short of that size and reuses replicas (``PoolConfig.reuse_on_scale_in``, EC2
   Auto Scaling's ``ReuseOnScaleIn``), a named READY replica goes back to it as a standby
   instead of leaving: the actuator parks it out of rotation, and it finishes its in-flight
   work there. A claimed standby is READY in the pool at once (the pool store's ``release``);
   any other replica is adopted, READY as soon as the actuator sees it READY (the simulator at
   once, the fleet at its next probe). A claim may take it back before it is empty. No cold
   start refills the pool. Every other named replica is drained: it finishes in-flight work and
   leaves;
3. **claim or cold-start**: for each of ``start``, claim the oldest READY standby and promote
   it into rotation; when the pool has none, cold-start a replica; stop when the actuator has no
   room for another;
4. **swap**: while the pool still has a READY standby, trade it for a replica of ``swap`` that
   is still warming from a cold start launched after that standby (claimed standbys are
   skipped; a standby launched after the cold start saves it nothing: at start-up the floor and
   the first standby start together, and trading them only churns the load balancer): the
   standby is claimed and promoted, and the cold start is handed to the pool as its replacement
   standby (the actuator parks it out of rotation, still starting; its age counts from its
   launch), or stopped when the pool takes no members. The fleet keeps its size, the pool its
   standbys; the READY capacity arrives a cold start sooner;
5. **follow**: the pool resizes to the decision's ``standbys`` when it names them, else to
   the fleet's new target (``PoolConfig.max_prepared``): the size of step 2 again, since
   claims and swaps do not change it;
6. **reap**: the pool errors stragglers, recycles stale standbys, removes finished members (the
   actuator stops them) and tops up its deficit (the actuator launches them).

A claimed member whose replica is removed or drained is released to the pool here, so the pool
never holds a CLAIMED member whose replica is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from warmgate.autoscaling.model import Decision
from warmgate.autoscaling.pool import Member, MemberState, PoolEmpty, ReapReport, UnknownMember


class Actuator(Protocol):
    """What a fleet of replicas, virtual or real, must be able to do. Nothing here decides."""

    def remove(self, replica_id: str, now: float) -> None:
        """Drop a serving replica at once (it failed): stop it and forget it."""

    def drain(self, replica_id: str, now: float) -> None:
        """Take a serving replica out of rotation; it finishes in-flight work, then leaves."""

    def promote(self, member_id: str, now: float) -> None:
        """A claimed standby joins the rotation under its own id (no cold start)."""

    def cold_start(self, now: float) -> str | None:
        """Start a new serving replica; return its id, or None when there is no room for one."""

    def park(self, replica_id: str, now: float) -> None:
        """A serving replica leaves the rotation and goes on as a warm-pool member under its
        own id: one still starting goes on starting (the pool adopted it in a swap), a READY one
        finishes its in-flight work (the pool reused it on scale-in). The pool member turns
        READY when the replica is seen READY, as any standby's does."""

    def launched_at(self, replica_id: str) -> float:
        """When this serving replica was launched, on the clock ``now`` is read from."""

    def start_standby(self, member_id: str, now: float) -> bool:
        """Launch a warm-pool member out of rotation; False when there is no room for one."""

    def retire_standby(self, member_id: str, now: float) -> None:
        """The pool removed this member: stop its replica if one still runs."""


class PoolBooks(Protocol):
    """The pool books :func:`actuate` keeps: :class:`~warmgate.autoscaling.pool.WarmPool` in
    memory, or the fleet's store-backed pool (``warmgate.fleet.stored_pool``)."""

    def claim(self, now: float) -> Member: ...

    def adopt(self, member_id: str, now: float, launched_at: float) -> Member | None: ...

    def get(self, member_id: str) -> Member: ...

    def members(self) -> tuple[Member, ...]: ...

    def release(self, member_id: str) -> Member: ...

    def give_back(self, member_id: str, now: float) -> Member: ...

    def resize(self, target: int) -> int: ...

    def wanted(self) -> int: ...

    def follow(self, fleet_target: int) -> int: ...

    def reap(self, now: float) -> ReapReport: ...

    def mark_errored(self, member_id: str, reason: str) -> Member: ...


@dataclass(frozen=True)
class Swap:
    """One trade of step 4: standby ``claimed`` serves in place of cold start ``replaced``,
    which went to the pool (``pooled``) or was stopped."""

    claimed: str
    replaced: str
    pooled: bool


@dataclass(frozen=True)
class Actuation:
    """What one :func:`actuate` did."""

    removed: tuple[str, ...] = ()
    drained: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()  # named to drain, parked as standbys instead
    claimed: tuple[str, ...] = ()
    cold_started: tuple[str, ...] = ()
    pool: ReapReport | None = None
    swapped: tuple[Swap, ...] = ()

    @property
    def started(self) -> int:
        return len(self.claimed) + len(self.cold_started)


def actuate(decision: Decision, pool: PoolBooks | None, actuator: Actuator, now: float) -> Actuation:
    """Apply ``decision`` through ``actuator``, keeping ``pool``'s books (see the module doc)."""
    for replica_id in decision.replace:
        actuator.remove(replica_id, now)
        _release(pool, replica_id)
    _size(pool, decision)
    reused: list[str] = []
    for replica_id in decision.drain:
        if _reuse(pool, actuator, replica_id, now):
            reused.append(replica_id)
            continue
        actuator.drain(replica_id, now)
        _release(pool, replica_id)
    claimed: list[str] = []
    cold: list[str] = []
    for _ in range(decision.start):
        member_id = _claim(pool, now)
        if member_id is not None:
            actuator.promote(member_id, now)
            claimed.append(member_id)
            continue
        started = actuator.cold_start(now)
        if started is None:
            break
        cold.append(started)
    swapped = _swap(decision.swap, pool, actuator, now)
    report = _follow_and_reap(pool, actuator, decision, now)
    drained = tuple(r for r in decision.drain if r not in reused)
    return Actuation(
        tuple(decision.replace), drained, tuple(reused), tuple(claimed), tuple(cold), report, swapped
    )


def _reuse(pool: PoolBooks | None, actuator: Actuator, replica_id: str, now: float) -> bool:
    """Book a replica named to drain as a standby while the pool is short, and park it: a
    claimed standby goes back to READY (when the pool may reuse it), any other replica is
    adopted, and the actuator marks it READY once it sees it so (at once for a replica that
    served). Either may be claimed back while it still finishes its in-flight work."""
    if pool is None or pool.wanted() <= 0:
        return False
    try:
        member: Member | None = pool.get(replica_id)
    except UnknownMember:
        member = None
    if member is not None:
        if member.state is not MemberState.CLAIMED:
            return False
        if pool.give_back(replica_id, now).state is not MemberState.READY:
            return False  # refused (the pool is full, or the member too old): it drains
    elif pool.adopt(replica_id, now, actuator.launched_at(replica_id)) is None:
        return False
    actuator.park(replica_id, now)
    return True


def _size(pool: PoolBooks | None, decision: Decision) -> None:
    """Resize the pool to what ``decision`` wants (its ``standbys``, else the fleet's target)."""
    if pool is None:
        return
    if decision.standbys is not None:
        pool.resize(decision.standbys)
    else:
        pool.follow(decision.target)


def _swap(
    warming: tuple[str, ...], pool: PoolBooks | None, actuator: Actuator, now: float
) -> tuple[Swap, ...]:
    """Trade READY standbys for cold starts still warming, in ``warming``'s order (see step 4)."""
    if pool is None:
        return ()
    done: list[Swap] = []
    for replica_id in warming:
        standby_since = _oldest_ready(pool)
        if standby_since is None:
            break
        if _is_member(pool, replica_id):
            continue  # a claimed standby on its way into rotation, not a cold start
        launched = actuator.launched_at(replica_id)
        if launched <= standby_since:
            continue
        member_id = _claim(pool, now)
        if member_id is None:
            break
        actuator.promote(member_id, now)
        pooled = pool.adopt(replica_id, now, launched) is not None
        if pooled:
            actuator.park(replica_id, now)
        else:
            actuator.remove(replica_id, now)
        done.append(Swap(member_id, replica_id, pooled))
    return tuple(done)


def _oldest_ready(pool: PoolBooks) -> float | None:
    """When the longest-running READY standby was launched; None when none is READY."""
    return min((m.created_at for m in pool.members() if m.state is MemberState.READY), default=None)


def _is_member(pool: PoolBooks, replica_id: str) -> bool:
    try:
        pool.get(replica_id)
    except UnknownMember:
        return False
    return True


def _claim(pool: PoolBooks | None, now: float) -> str | None:
    if pool is None:
        return None
    try:
        return pool.claim(now).member_id
    except PoolEmpty:
        return None


def _release(pool: PoolBooks | None, replica_id: str) -> None:
    """A claimed member's replica left the rotation: the member is done."""
    if pool is None:
        return
    try:
        member = pool.get(replica_id)
    except UnknownMember:
        return
    if member.state is MemberState.CLAIMED:
        pool.release(replica_id)


def _follow_and_reap(
    pool: PoolBooks | None, actuator: Actuator, decision: Decision, now: float
) -> ReapReport | None:
    if pool is None:
        return None
    _size(pool, decision)
    report = pool.reap(now)
    for member_id in report.removed:
        actuator.retire_standby(member_id, now)
    for member_id in report.started:
        if not actuator.start_standby(member_id, now):
            pool.mark_errored(member_id, "no room to launch a standby")
    return report
