"""The control loop: observe the fleet, ask the pure policy, keep the warm pool's books, apply.

One :meth:`ControlLoop.tick`:

1. refresh the fleet (probe every replica over HTTP, poll every process); with a
   :class:`~warmgate.fleet.redeploy.Redeploy`, step a model change (stage, warm, switch);
2. sync the pool's books with what the standbys' probes said (READY, or died → errored);
3. build an :class:`~warmgate.autoscaling.model.Observation` of the SERVING replicas
   (request rate from ``/invocations`` counts, HAProxy's backend queue as ``queued``), plus,
   while a new model warms, the STAGED replicas the policy itself started (as WARMING);
4. ``decide(observation, state, config, now)``;
5. apply it with the shared :func:`~warmgate.autoscaling.actuation.actuate` through
   :class:`~warmgate.fleet.actuator.FleetActuator` (the simulator runs the same sequence):
   replace failed replicas, drain, claim a READY standby (promoted into rotation: no cold
   start) or cold-start, trade standbys that are READY now for cold starts still warming (the
   cold start is parked as the pool's standby), let the pool follow the target, reap (launch
   and retire standbys). Only replicas whose own probe says WARMING are traded: a STAGED
   replica the observation shows as WARMING may be READY already.

The clock is injected; :func:`observe` and :class:`RateMeter` are pure.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from warmgate.autoscaling.actuation import Actuation, PoolBooks, Swap, actuate
from warmgate.autoscaling.model import (
    Decision,
    Observation,
    PolicyState,
    ReplicaPhase,
    ReplicaView,
    ScalingConfig,
)
from warmgate.autoscaling.policy import decide
from warmgate.autoscaling.pool import Member, MemberState, ReapReport
from warmgate.fleet.actuator import FleetActuator
from warmgate.fleet.fleet import Fleet, ReplicaInfo, Role, routed
from warmgate.fleet.metrics import FleetMetrics
from warmgate.fleet.redeploy import Redeploy, staged_surplus
from warmgate.fleet.runtime_api import BackendStat

log = logging.getLogger("warmgate.fleet")

Clock = Callable[[], float]


class FleetPool(PoolBooks, Protocol):
    """The pool books the loop keeps: an in-memory :class:`~warmgate.autoscaling.pool.WarmPool`
    or a store-backed :class:`~warmgate.fleet.stored_pool.StoredPool`."""

    def members(self) -> tuple[Member, ...]: ...

    def mark_ready(self, member_id: str, now: float) -> Member: ...


class RateMeter:
    """Requests per second from cumulative per-replica counters (a restarted or new replica
    contributes from its first sample; a counter that went down counts from zero)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._at: float | None = None

    def update(self, counts: Mapping[str, int], now: float) -> float:
        served = sum(max(0, count - self._last.get(rid, count)) for rid, count in counts.items())
        elapsed = None if self._at is None else now - self._at
        self._last, self._at = dict(counts), now
        return served / elapsed if elapsed else 0.0


def observe(serving: Iterable[ReplicaInfo], request_rate: float, queued: int) -> Observation:
    """The policy's view of the SERVING replicas (standbys are the pool's business)."""
    views = tuple(ReplicaView(r.replica_id, r.phase, r.load.in_flight) for r in serving)
    waiting = sum(r.load.waiting for r in serving if r.phase is ReplicaPhase.READY)
    return Observation(views, request_rate=request_rate, queued=queued, waiting=waiting)


@dataclass(frozen=True)
class TickReport:
    """What one tick saw and did."""

    observation: Observation
    decision: Decision
    claimed: tuple[str, ...] = ()
    cold_started: tuple[str, ...] = ()
    drained: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    pool: ReapReport | None = None
    swapped: tuple[Swap, ...] = ()
    reused: tuple[str, ...] = ()  # scaled in, parked as standbys (PoolConfig.reuse_on_scale_in)


class ControlLoop:
    """Steps the policy over a live :class:`Fleet`, with an optional warm pool of standbys.

    ``redeploy``, when set, is stepped every tick before the pool and the policy: it changes
    the model blue/green (:mod:`warmgate.fleet.redeploy`)."""

    redeploy: Redeploy | None

    def __init__(
        self,
        fleet: Fleet,
        config: ScalingConfig,
        pool: FleetPool | None = None,
        *,
        clock: Clock = time.monotonic,
        tick_s: float = 0.25,
    ) -> None:
        self.fleet = fleet
        self.config = config
        self.pool = pool
        self.clock = clock
        self.tick_s = tick_s
        self.state = PolicyState()
        self._rate = RateMeter()
        self._actuator = FleetActuator(fleet)
        self.metrics = FleetMetrics()
        self.redeploy = None

    @staticmethod
    def _swappable(
        listed: tuple[str, ...], replicas: Iterable[ReplicaInfo], backend: BackendStat
    ) -> tuple[str, ...]:
        """The policy's swap candidates the fleet may trade: still starting by their own probe
        and not yet routed to by HAProxy (its health check can admit a replica that turned
        READY between two probes; parking that one would cut the requests it serves). Which of
        them a READY standby may replace is the shared sequence's rule (``actuation._swap``)."""
        starting = {
            r.replica_id for r in replicas if r.phase is ReplicaPhase.WARMING and not routed(backend, r)
        }
        return tuple(r for r in listed if r in starting)

    def tick(self) -> TickReport:
        now = self.clock()
        self.fleet.refresh(now)
        if self.redeploy is not None:
            self.redeploy.step(now)
        replicas = self.fleet.replicas()
        serving = [r for r in replicas if r.role is Role.SERVING]
        if self.pool is not None:
            self._sync_pool(self.pool, replicas, now)
        backend = self.fleet.backend()
        members = self.pool.members() if self.pool is not None else ()
        self.metrics.update(replicas, members, backend, now)
        rate = self._rate.update({r.replica_id: r.load.invocations for r in serving}, now)
        observation = observe([*serving, *staged_surplus(replicas)], rate, backend.queued)
        decision, self.state = decide(observation, self.state, self.config, now)
        tradable = self._swappable(decision.swap, replicas, backend)
        decision = dataclasses.replace(decision, swap=tradable)

        done = self.apply(decision, now)
        claimed = (*done.claimed, *(s.claimed for s in done.swapped))
        if claimed:
            admitted = self.clock()
            served = {r.replica_id: r.load.invocations for r in replicas}
            for rid in claimed:
                self.metrics.claimed(rid, now, admitted, served.get(rid, 0))
        if decision.start or decision.drain or decision.replace:
            log.info(
                "decision: %s (hot %d, warming %d, target %d): claimed %s, cold-started %s, "
                "drained %s, reused as standbys %s",
                decision.reason,
                decision.hot,
                decision.warming,
                decision.target,
                list(done.claimed),
                list(done.cold_started),
                list(done.drained),
                list(done.reused),
            )
        for swap in done.swapped:
            log.info(
                "standby %s is READY: it serves in place of %s, still starting (%s)",
                swap.claimed,
                swap.replaced,
                "now the pool's standby" if swap.pooled else "stopped",
            )
        return TickReport(
            observation,
            decision,
            done.claimed,
            done.cold_started,
            done.drained,
            done.removed,
            done.pool,
            done.swapped,
            done.reused,
        )

    def apply(self, decision: Decision, now: float) -> Actuation:
        """The shared actuation sequence, through this fleet's processes and HAProxy."""
        return actuate(decision, self.pool, self._actuator, now)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_s`` until ``stop`` is set."""
        while not stop.is_set():
            began = self.clock()
            self.tick()
            stop.wait(max(0.0, self.tick_s - (self.clock() - began)))

    def _sync_pool(self, pool: FleetPool, replicas: Iterable[ReplicaInfo], now: float) -> None:
        """Tell the pool which standbys became READY and which died; release finished claims."""
        books = {m.member_id: m for m in pool.members()}
        live: dict[str, ReplicaInfo] = {r.replica_id: r for r in replicas}
        for rid, info in live.items():
            member = books.get(rid)
            if member is None or info.role is not Role.STANDBY:
                continue
            if member.state is MemberState.WARMING and info.phase is ReplicaPhase.READY:
                pool.mark_ready(rid, now)
            elif member.state in (MemberState.WARMING, MemberState.READY) and info.phase in (
                ReplicaPhase.FAILED,
                ReplicaPhase.DRAINING,
            ):
                pool.mark_errored(rid, f"standby {info.phase.value}")
        for member in books.values():
            claimed = live.get(member.member_id)
            if member.state is MemberState.CLAIMED and (
                claimed is None or claimed.phase in (ReplicaPhase.DRAINING, ReplicaPhase.FAILED)
            ):
                pool.release(member.member_id)


class Background:
    """Run a :class:`ControlLoop` on a thread; :meth:`stop` joins it and re-raises its error."""

    def __init__(self, loop: ControlLoop) -> None:
        self.loop = loop
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="warmgate-fleet-control", daemon=True)

    def start(self) -> Background:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        try:
            self.loop.run(self._stop)
        except BaseException as exc:  # handed to the thread that calls stop(), not swallowed
            self._error = exc
            log.exception("the fleet's control loop stopped")
