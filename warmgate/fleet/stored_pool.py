"""The fleet's warm pool, its books kept in a :class:`~warmgate.fleet.store.PoolStore`.

:class:`StoredPool` gives the shared :func:`~warmgate.autoscaling.actuation.actuate` the pool
interface it keeps books through (:class:`~warmgate.autoscaling.actuation.PoolBooks`, the
in-memory :class:`~warmgate.autoscaling.pool.WarmPool`'s), so the fleet runs the one
actuation sequence whichever books it keeps. What the store adds:

- every member is registered and claimed under the fleet's :class:`MatchKey`
  (:mod:`warmgate.fleet.match`): a standby warmed for other weights or options is never claimed;
- the controller holds a lease: it joins when the pool is opened, renews it on every reap
  (at most every third of the lease's TTL), and :meth:`StoredPool.leave` ends it;
- claims and top-ups are the controller's own (``own=True``): a local fleet can promote only
  the processes it launched, so a standby booked by another controller (or by this fleet's
  earlier run that crashed) is never claimed and never counted towards this fleet's pool;
- a model change re-keys the pool (:meth:`StoredPool.rekey`): this fleet's standbys of the old key
  are drained in the store (never claimed again) and the next reap reports them for the
  fleet to stop, while top-ups and claims use the new key.

``now`` is the store's clock: seconds that every controller sharing the store agrees on.
"""

from __future__ import annotations

import itertools
import logging

from warmgate.autoscaling.pool import Member, MemberState, PoolConfig, ReapReport, UnknownMember
from warmgate.fleet.store import (
    DuplicateMember,
    LeaseExpired,
    MatchKey,
    PoolArchived,
    PoolDraining,
    PoolStore,
    StoredMember,
)

log = logging.getLogger("warmgate.fleet")


class StoredPool:
    """One controller's warm pool for one :class:`MatchKey`, booked in ``store``."""

    def __init__(self, store: PoolStore, key: MatchKey, name: str, now: float, *, lease_ttl_s: float) -> None:
        self.store = store
        self.key = key
        self._name = name
        self._renew_every = lease_ttl_s / 3
        self._target = store.config.target_size
        self._held: list[str] = []  # every controller id this pool held; their processes are ours
        self._seq = itertools.count()
        self._launched: dict[str, int] = {}  # member id -> order of its top-up: ties of created_at
        self._join(now)

    @property
    def config(self) -> PoolConfig:
        return self.store.config

    @property
    def controller_id(self) -> str:
        return self._held[-1]

    @property
    def target_size(self) -> int:
        return self._target

    # -- what actuate() keeps books through -----------------------------------------------
    def claim(self, now: float) -> Member:
        """The oldest READY member this controller launched under its key, or PoolEmpty."""
        return self.store.claim(self.key, self.controller_id, now, own=True).member

    def adopt(self, member_id: str, now: float, launched_at: float) -> Member | None:
        """Like :meth:`WarmPool.adopt`: book a replica already starting (a cold start traded
        for a READY standby) as this controller's WARMING member under its own id; ``None``
        when the store refuses it (the key drains or is archived, the id is taken)."""
        try:
            member = self.store.register(
                member_id, self.key, self.controller_id, now, launched_at=launched_at
            ).member
        except (PoolArchived, PoolDraining, DuplicateMember) as exc:
            log.info("pool store: %s is stopped, not pooled: %s", member_id, exc)
            return None
        self._launched[member_id] = next(self._seq)
        return member

    def get(self, member_id: str) -> Member:
        """This controller's member ``member_id``: another controller's member of the same id
        (fleets name their cold starts alike, and a swap pools one) is not ours to release."""
        stored = self.store.get(member_id)
        if stored.owner not in self._held:
            raise UnknownMember(f"pool member {member_id!r} belongs to {stored.owner}, not to us")
        return stored.member

    def release(self, member_id: str) -> Member:
        return self.store.mark_draining(member_id, "released").member

    def give_back(self, member_id: str, now: float) -> Member:
        """Like :meth:`WarmPool.give_back`: the store's ``release``, READY again when the pool
        may reuse the member (counting this controller's standbys), else DRAINING."""
        return self.store.release(member_id, self.controller_id, now, own=True).member

    def resize(self, target: int) -> int:
        """Like :meth:`WarmPool.resize`: the target size, clamped to ``[min_size, max_size]``."""
        self._target = min(max(target, self.config.min_size), self.config.max_size)
        return self._target

    def wanted(self) -> int:
        """Like :meth:`WarmPool.wanted`: this controller's standbys of its key missing from the
        target size (0 unless ``reuse_on_scale_in``)."""
        if not self.config.reuse_on_scale_in:
            return 0
        live = (MemberState.WARMING, MemberState.READY)
        mine = sum(
            1
            for s in self.store.members()
            if s.owner in self._held and s.key == self.key and s.member.state in live
        )
        return max(0, self._target - mine)

    def follow(self, fleet_target: int) -> int:
        """Like :meth:`WarmPool.follow`: ``max_prepared - fleet_target`` when that is set."""
        if self.config.max_prepared is None:
            return self._target
        return self.resize(self.config.max_prepared - fleet_target)

    def reap(self, now: float) -> ReapReport:
        """Renew the lease, reap the store, top this controller's standbys up to the target.

        ``removed`` lists only members this pool's controller ids owned: their processes are
        the fleet's to stop. Orphans of other controllers leave the books without that.
        """
        self._renew(now)
        self._drain_surplus()
        report = self.store.reap(self.controller_id, now)
        started = self.store.top_up(self.key, self._target, self.controller_id, now, own=True)
        self._launched.update((member_id, next(self._seq)) for member_id in started)
        removed = tuple(m.member_id for m in report.removed if m.owner in self._held)
        return ReapReport(started, report.errored, report.recycled, removed)

    def mark_errored(self, member_id: str, reason: str) -> Member:
        return self.store.mark_errored(member_id, reason).member

    def rekey(self, key: MatchKey, reason: str) -> tuple[str, ...]:
        """Book, top up and claim under ``key`` from now on. This fleet's WARMING and READY
        standbys of any other key are drained (``reason`` on their rows), so no claim can take
        them; the next :meth:`reap` removes them and reports them for the fleet to stop.
        Returns their ids. Only this fleet's own: ``store.drain(key)`` would also drain the
        standbys of other controllers that still serve the old key, and stop that key's top-ups.
        """
        drained = []
        for stored in self.store.members():
            live = stored.member.state in (MemberState.WARMING, MemberState.READY)
            if stored.owner in self._held and stored.key != key and live:
                self.store.mark_draining(stored.member.member_id, reason)
                drained.append(stored.member.member_id)
        self.key = key
        return tuple(drained)

    def _drain_surplus(self) -> None:
        """Standbys over a lowered target leave as :meth:`WarmPool.reap` retires them: WARMING
        ones first (not yet useful), then READY ones, the newest of each first. Drained here,
        the store's reap then removes them and reports them for the fleet to stop."""
        mine = [s.member for s in self.store.members() if s.owner in self._held and s.key == self.key]
        self._launched = {m.member_id: n for m in mine if (n := self._launched.get(m.member_id)) is not None}
        # Newest first; members topped up at the same instant in the order they were launched,
        # as WarmPool (ids are random, so the store's id order says nothing about age).
        newest = sorted(mine, key=lambda m: (m.created_at, self._launched.get(m.member_id, -1)), reverse=True)
        order = [m for m in newest if m.state is MemberState.WARMING]
        order += [m for m in newest if m.state is MemberState.READY]
        # The store's top-up fills to the same number (an operator's `replenish` floor included),
        # so this drain and that top-up never retire and relaunch the same standbys every tick.
        settings = next((p for p in self.store.pools() if p.key == self.key), None)
        keep = self._target if settings is None else settings.standbys_wanted(self._target, self.config)
        for member in order[: max(0, len(order) - keep)]:
            self.store.mark_draining(member.member_id, "surplus over the target size")

    # -- what the control loop reads and syncs ---------------------------------------------
    def members(self) -> tuple[Member, ...]:
        """The members this fleet runs (owned by any controller id it held), any key."""
        return tuple(s.member for s in self.store.members() if s.owner in self._held)

    def mark_ready(self, member_id: str, now: float) -> Member:
        return self.store.mark_ready(member_id, now).member

    # -- the lease -------------------------------------------------------------------------
    def leave(self) -> tuple[StoredMember, ...]:
        """End the lease; return every member it owned (as they stood) for the fleet to stop."""
        return self.store.leave(self.controller_id)

    def _join(self, now: float) -> None:
        self._held.append(self.store.join(self._name, now).controller_id)
        self._renewed_at = now
        log.info("pool store: joined as %s for %s", self.controller_id, self.key)

    def _renew(self, now: float) -> None:
        if now - self._renewed_at < self._renew_every:
            return
        try:
            self.store.heartbeat(self.controller_id, now)
            self._renewed_at = now
        except LeaseExpired as exc:
            # Its members are reaped as orphans; the ones still running are stopped when the
            # reap reports them (their owner is one of ours). Go on under a new id.
            log.warning("pool store: %s; joining again", exc)
            self._join(now)
