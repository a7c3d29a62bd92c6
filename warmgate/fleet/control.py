"""The control loop: observe the fleet, ask the pure policy, keep the warm pool's books, apply.

One :meth:`ControlLoop.tick`:

1. refresh the fleet (probe every replica over HTTP, poll every process);
2. sync the pool's books with what the standbys' probes said (READY, or died → errored);
3. build an :class:`~warmgate.autoscaling.model.Observation` of the SERVING replicas
   (request rate from ``/invocations`` counts, HAProxy's backend queue as ``queued``);
4. ``decide(observation, state, config, now)``;
5. remove the FAILED replicas it names, drain the ones it picks, and for each start claim a
   READY standby (promoted into rotation: no cold start), else cold-start a replica;
6. let the pool follow the target and reap: launch new standbys, retire stale ones.

The clock is injected; :func:`observe` and :class:`RateMeter` are pure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from warmgate.autoscaling.model import (
    Decision,
    Observation,
    PolicyState,
    ReplicaPhase,
    ReplicaView,
    ScalingConfig,
)
from warmgate.autoscaling.policy import decide
from warmgate.autoscaling.pool import MemberState, PoolEmpty, ReapReport, WarmPool
from warmgate.fleet.fleet import Fleet, ReplicaInfo, Role
from warmgate.fleet.slots import NoFreeSlot

log = logging.getLogger("warmgate.fleet")

Clock = Callable[[], float]


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
    return Observation(views, request_rate=request_rate, queued=queued)


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


class ControlLoop:
    """Steps the policy over a live :class:`Fleet`, with an optional warm pool of standbys."""

    def __init__(
        self,
        fleet: Fleet,
        config: ScalingConfig,
        pool: WarmPool | None = None,
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
        self._claimed: set[str] = set()

    def tick(self) -> TickReport:
        now = self.clock()
        self.fleet.refresh(now)
        replicas = self.fleet.replicas()
        serving = [r for r in replicas if r.role is Role.SERVING]
        if self.pool is not None:
            self._sync_pool(self.pool, replicas, now)
        rate = self._rate.update({r.replica_id: r.load.invocations for r in serving}, now)
        observation = observe(serving, rate, self.fleet.backend().queued)
        decision, self.state = decide(observation, self.state, self.config, now)

        for rid in decision.replace:
            self.fleet.remove(rid)
        for rid in decision.drain:
            self.fleet.drain(rid, now)
        claimed, cold = self._start(decision.start, now)
        reaped = self._reap(decision.target, now)
        if decision.start or decision.drain or decision.replace:
            log.info(
                "decision: %s (hot %d, warming %d, target %d): claimed %s, cold-started %s, drained %s",
                decision.reason,
                decision.hot,
                decision.warming,
                decision.target,
                list(claimed),
                list(cold),
                list(decision.drain),
            )
        return TickReport(observation, decision, claimed, cold, decision.drain, decision.replace, reaped)

    def run(self, stop: threading.Event) -> None:
        """Tick every ``tick_s`` until ``stop`` is set."""
        while not stop.is_set():
            began = self.clock()
            self.tick()
            stop.wait(max(0.0, self.tick_s - (self.clock() - began)))

    def _start(self, count: int, now: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Claim ``count`` standbys from the pool; cold-start whatever it cannot give."""
        claimed: list[str] = []
        cold: list[str] = []
        for _ in range(count):
            if self.pool is not None:
                try:
                    member = self.pool.claim(now)
                except PoolEmpty:
                    pass
                else:
                    self.fleet.promote(member.member_id)
                    self._claimed.add(member.member_id)
                    claimed.append(member.member_id)
                    continue
            try:
                cold.append(self.fleet.launch(Role.SERVING, now))
            except NoFreeSlot as exc:
                log.warning("cannot start a replica: %s", exc)
                break
        return tuple(claimed), tuple(cold)

    def _sync_pool(self, pool: WarmPool, replicas: Iterable[ReplicaInfo], now: float) -> None:
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
        for rid in list(self._claimed):
            claimed = live.get(rid)
            if claimed is None or claimed.phase in (ReplicaPhase.DRAINING, ReplicaPhase.FAILED):
                pool.release(rid)
                self._claimed.discard(rid)

    def _reap(self, fleet_target: int, now: float) -> ReapReport | None:
        if self.pool is None:
            return None
        self.pool.follow(fleet_target)
        report = self.pool.reap(now)
        for rid in report.removed:
            self.fleet.retire(rid, now)
        for rid in report.started:
            try:
                self.fleet.launch(Role.STANDBY, now, replica_id=rid)
            except NoFreeSlot as exc:
                self.pool.mark_errored(rid, str(exc))
                log.warning("cannot start standby %s: %s", rid, exc)
        return report


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
