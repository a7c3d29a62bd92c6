"""A discrete-event simulator that steps :func:`~warmgate.autoscaling.policy.decide` over a trace.

Model, in one paragraph: a hot replica serves ``concurrency`` requests at once, each for
``service_s`` x its size (or the replica model's drawn service time:
:meth:`~warmgate.autoscaling.scenario.ReplicaModel.draw_service`), and admits up to
``queue_depth`` more in a FIFO queue. The router
sends each arrival to the hot replica with the fewest outstanding requests that still has
room; when none has room (or none is hot) the request *met no ready replica*: the router
holds it up to ``router_timeout_s`` for room to appear, then refuses it. Every ``tick_s``
the policy sees an observation and its decision is applied by the shared
:func:`~warmgate.autoscaling.actuation.actuate` through this module's virtual replicas: failed
replicas are removed, ``start`` replicas are claimed from the warm pool (ready after
``claim_s``) or cold-started (ready after provision + load + warmup, or failed with
``start_failure_rate``), and drained replicas stop taking work and leave once empty. A cold
start that a READY standby replaced (the actuation's swap) goes on starting as a pool member
and joins the pool's READY standbys when its start would have made it READY.
Crashes in the trace kill a hot replica and every request on it. With a hibernated tier
(``SimConfig.hibernated``), a cold start resumes a hibernated standby instead (READY after
``resume_s``) while the tier has one, and a new one is launched into the tier.
Randomness comes only from the ``random.Random`` passed in.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from warmgate.autoscaling.actuation import Actuation, actuate
from warmgate.autoscaling.engines import EngineState, step
from warmgate.autoscaling.model import Decision, Observation, ReplicaPhase, ReplicaView
from warmgate.autoscaling.pool import MemberState, WarmPool
from warmgate.autoscaling.report import SimReport, TimelinePoint
from warmgate.autoscaling.scenario import SimConfig
from warmgate.autoscaling.traces import Trace


class _Event(Enum):
    COMPLETE = 0
    READY = 1
    POOL_READY = 2
    TICK = 3
    CRASH = 4
    DRAIN_DUE = 5
    HIBERNATED = 6
    ADMITTED = 7


@dataclass(eq=False)
class _Replica:
    replica_id: str
    phase: ReplicaPhase
    fails_on_start: bool = False
    in_service: set[int] = field(default_factory=set)
    queue: deque[int] = field(default_factory=deque)
    drain_due: bool = False
    starting: bool = False  # a cold start under way: its process takes the host's cores
    launched_at: float = 0.0
    admit_s: float = 0.0  # READY -> routed: the load balancer's check (a started replica's)
    routed_at: float = 0.0  # from when the router may send it requests (READY + admit_s)
    to_pool: bool = False  # reused on scale-in: a READY standby, finishing its in-flight work

    @property
    def outstanding(self) -> int:
        return len(self.in_service) + len(self.queue)


class Simulation:
    """One simulation's mutable world and the virtual replicas' :class:`Actuator`.

    :func:`simulate` is the usual entry; :meth:`apply` drives the shared actuation directly.
    """

    def __init__(self, trace: Trace, config: SimConfig, rng: random.Random) -> None:
        self.trace = trace
        self.cfg = config
        self.model = config.replica
        self.rng = rng
        self.pool = WarmPool(config.pool, id_prefix="standby") if config.pool is not None else None
        self.replicas: dict[str, _Replica] = {}
        self.events: list[tuple[float, int, _Event, str, int]] = []
        self.seq = 0
        self.held: deque[int] = deque()
        self.state: EngineState | None = None
        self.now = 0.0
        self.last = 0.0
        self.next_id = 0
        self.latencies: list[float] = []
        self.refused = self.crashed = self.late = self.slow = self.met_no_ready = 0
        self.service: dict[int, float] = {}
        self.claims = self.cold_starts = 0
        self.hot_hours = self.warming_hours = self.pooled_hours = 0.0
        self.below_floor_s = 0.0
        self.timeline: list[TimelinePoint] = []
        self.tick_arrivals = 0
        self.tick_latencies: list[float] = []
        self.tick_misses = 0
        self.sleeping = config.hibernated  # hibernated standbys, prepared before the trace
        self.preparing = 0  # launched into the hibernated tier, running until they sleep
        self.hibernated_hours = 0.0
        self.slim_hours = 0.0  # READY standbys resized down (SimConfig.slim)
        self.resumes = 0
        self.parked: dict[str, bool] = {}  # cold starts handed to the pool -> fails_on_start

    # --- bookkeeping -------------------------------------------------------------------
    def push(self, at: float, kind: _Event, replica_id: str = "", request: int = -1) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, replica_id, request))

    def advance(self, to: float) -> None:
        end = min(to, self.trace.duration_s)
        span = end - self.last
        if span > 0:
            phases = [r.phase for r in self.replicas.values()]
            ready = phases.count(ReplicaPhase.READY)
            hot = ready + phases.count(ReplicaPhase.DRAINING)
            self.hot_hours += span * hot / 3600.0
            self.warming_hours += span * phases.count(ReplicaPhase.WARMING) / 3600.0
            # a replica reused on scale-in is booked as a standby already: count it hot until empty
            reusing = sum(1 for r in self.replicas.values() if r.to_pool)
            standby = self.pool.standby - reusing if self.pool is not None else 0
            self.pooled_hours += span * (standby + self.preparing) / 3600.0
            if self.cfg.slim is not None and self.pool is not None:  # READY already, still hot
                self.slim_hours += span * (self.pool.count(MemberState.READY) - reusing) / 3600.0
            self.hibernated_hours += span * self.sleeping / 3600.0
            if ready < self.cfg.floor:
                self.below_floor_s += span
            self.last = end
        self.now = to

    def new_replica(self, phase: ReplicaPhase, ready_in: float | None, admit_s: float = 0.0) -> _Replica:
        self.next_id += 1
        replica = _Replica(f"replica-{self.next_id}", phase, launched_at=self.now, admit_s=admit_s)
        self.replicas[replica.replica_id] = replica
        if ready_in is not None:
            self.push(self.now + ready_in, _Event.READY, replica.replica_id)
        return replica

    def miss(self) -> None:
        self.tick_misses += 1

    # --- requests ----------------------------------------------------------------------
    def room(self) -> _Replica | None:
        limit = self.model.concurrency + self.model.queue_depth
        best: _Replica | None = None
        for r in self.replicas.values():
            usable = self.routed(r) and r.outstanding < limit
            if usable and (best is None or r.outstanding < best.outstanding):
                best = r
        return best

    def routed(self, replica: _Replica) -> bool:
        """READY and admitted by the load balancer: what the router sends to and a crash hits."""
        return replica.phase is ReplicaPhase.READY and replica.routed_at <= self.now

    def assign(self, replica: _Replica, request: int) -> None:
        if len(replica.in_service) < self.model.concurrency:
            self.begin(replica, request)
        else:
            replica.queue.append(request)

    def begin(self, replica: _Replica, request: int) -> None:
        replica.in_service.add(request)
        size = self.trace.sizes[request]
        service = self.model.draw_service(len(replica.in_service), size, self.rng, self.host_starting())
        if self.model.host_cores is not None:  # processor sharing, sampled when the request starts
            busy = sum(len(r.in_service) for r in self.replicas.values())
            service *= max(1.0, busy / self.model.host_cores)
        self.service[request] = service
        self.push(self.now + service, _Event.COMPLETE, replica.replica_id, request)

    def host_starting(self) -> bool:
        """Whether a replica or a standby is starting on the shared host (``host_cores`` set)."""
        if self.model.host_cores is None:
            return False
        pooled = self.pool is not None and self.pool.count(MemberState.WARMING) > 0
        return pooled or any(r.starting for r in self.replicas.values())

    def arrive(self, request: int) -> None:
        self.tick_arrivals += 1
        replica = self.room()
        if replica is None:
            self.met_no_ready += 1
            self.held.append(request)
        else:
            self.assign(replica, request)

    def flush_held(self) -> None:
        while self.held:
            request = self.held[0]
            if self.now - self.trace.arrivals[request] > self.cfg.router_timeout_s:
                self.held.popleft()
                self.refused += 1
                self.miss()
                continue
            replica = self.room()
            if replica is None:
                return
            self.held.popleft()
            self.assign(replica, request)

    def complete(self, replica_id: str, request: int) -> None:
        replica = self.replicas.get(replica_id)
        if replica is None or request not in replica.in_service:
            return  # the replica crashed; the request was already counted
        replica.in_service.discard(request)
        latency = self.now - self.trace.arrivals[request]
        self.latencies.append(latency)
        self.tick_latencies.append(latency)
        waited = latency - self.service.pop(request)
        if latency > self.cfg.latency_budget_s:
            self.slow += 1
        if waited > self.cfg.latency_budget_s:
            self.late += 1
            self.miss()
        if replica.queue:
            self.begin(replica, replica.queue.popleft())
        if replica.phase is ReplicaPhase.DRAINING:
            self.maybe_remove(replica)
        self.flush_held()

    # --- replicas ----------------------------------------------------------------------
    def became_ready(self, replica_id: str) -> None:
        if replica_id in self.parked:  # its start finished after the pool adopted it
            self.pool_member_ready(replica_id, fails=self.parked.pop(replica_id))
            return
        replica = self.replicas.get(replica_id)
        if replica is None or replica.phase is not ReplicaPhase.WARMING:
            return
        replica.phase = ReplicaPhase.FAILED if replica.fails_on_start else ReplicaPhase.READY
        replica.starting = False
        replica.routed_at = self.now + replica.admit_s
        if replica.admit_s > 0 and replica.phase is ReplicaPhase.READY:
            self.push(replica.routed_at, _Event.ADMITTED, replica_id)
        self.flush_held()

    def crash(self) -> None:
        hot = sorted(r for r, v in self.replicas.items() if self.routed(v))
        if not hot:
            return
        replica = self.replicas[self.rng.choice(hot)]
        lost = replica.outstanding
        self.crashed += lost
        self.tick_misses += lost
        replica.in_service.clear()
        replica.queue.clear()
        replica.phase = ReplicaPhase.FAILED

    # --- the Actuator protocol (warmgate.autoscaling.actuation) ------------------------
    def remove(self, replica_id: str, now: float) -> None:
        self.replicas.pop(replica_id, None)

    def drain(self, replica_id: str, now: float) -> None:
        replica = self.replicas[replica_id]
        if replica.phase is ReplicaPhase.DRAINING:
            return
        replica.phase = ReplicaPhase.DRAINING
        self.push(now + self.model.drain_s, _Event.DRAIN_DUE, replica_id)

    def promote(self, member_id: str, now: float) -> None:
        """A claimed standby takes traffic once the router has seen it: ``claim_s`` later (a
        slim one is resized up meanwhile: ``resize_s`` when that takes longer)."""
        self.claims += 1
        replica = self.replicas.get(member_id)  # a reused standby still finishing its requests
        if replica is not None:
            replica.phase, replica.to_pool = ReplicaPhase.WARMING, False
        else:
            replica = _Replica(member_id, ReplicaPhase.WARMING, launched_at=now)
            self.replicas[member_id] = replica
        resize_s = self.cfg.slim.resize_s if self.cfg.slim is not None else 0.0
        self.push(now + max(resize_s, self.model.claim_s), _Event.READY, member_id)

    def cold_start(self, now: float) -> str | None:
        """Resume a hibernated standby when the tier has one (``resume_s``; a new one is
        launched into the tier), else launch a replica (provision + load + warmup); either is
        routed ``admit_s`` after it is READY (the load balancer's check)."""
        if self.sleeping > 0:
            self.sleeping -= 1
            self.preparing += 1
            self.resumes += 1
            self.push(now + self.start_time(), _Event.HIBERNATED)
            return self.new_replica(ReplicaPhase.WARMING, self.model.resume_s, self.model.admit_s).replica_id
        self.cold_starts += 1
        replica = self.new_replica(ReplicaPhase.WARMING, self.start_time(), self.model.admit_s)
        replica.starting = True
        replica.fails_on_start = self.rng.random() < self.model.start_failure_rate
        return replica.replica_id

    def park(self, replica_id: str, now: float) -> None:
        """A cold start leaves the rotation; its pending READY makes the pool member ready. A
        READY replica (reused on scale-in, READY in the pool already) takes nothing new and
        finishes its requests; a claim may take it back meanwhile."""
        replica = self.replicas[replica_id]
        if replica.phase is ReplicaPhase.WARMING:
            del self.replicas[replica_id]
            self.parked[replica_id] = replica.fails_on_start
            return
        replica.phase = ReplicaPhase.DRAINING
        replica.to_pool = True
        if self.pool is not None and self.pool.get(replica_id).state is MemberState.WARMING:
            self.pool.mark_ready(replica_id, now)  # adopted: it serves READY already
        self.maybe_remove(replica)

    def launched_at(self, replica_id: str) -> float:
        return self.replicas[replica_id].launched_at

    def start_standby(self, member_id: str, now: float) -> bool:
        self.push(now + self.start_time(), _Event.POOL_READY, member_id)
        return True

    def retire_standby(self, member_id: str, now: float) -> None:
        """A virtual standby is only the pool's books: nothing runs to stop."""

    def start_time(self) -> float:
        """Provision + load + warmup, spread log-normally when ``cold_start_sigma`` > 0."""
        sigma = self.model.cold_start_sigma
        spread = self.rng.lognormvariate(0.0, sigma) if sigma > 0 else 1.0
        return self.model.cold_start_s * spread

    def serving(self) -> dict[str, ReplicaPhase]:
        """Serving replicas (standbys excluded) by id: what the property test compares."""
        return {rid: r.phase for rid, r in self.replicas.items()}

    def apply(self, decision: Decision) -> Actuation:
        return actuate(decision, self.pool, self, self.now)

    def maybe_remove(self, replica: _Replica) -> None:
        if replica.outstanding > 0 or not (replica.drain_due or replica.to_pool):
            return
        del self.replicas[replica.replica_id]

    def pool_member_ready(self, member_id: str, fails: bool | None = None) -> None:
        """A standby's start is over: READY, or errored when its start fails (drawn here
        unless known: a parked cold start's fate was drawn when it started)."""
        books = {m.member_id: m.state for m in self.pool.members()} if self.pool is not None else {}
        if self.pool is None or books.get(member_id) is not MemberState.WARMING:
            return  # errored by the reaper meanwhile, drained, or claimed and given back READY
        if fails is None:
            fails = self.rng.random() < self.model.start_failure_rate
        if fails:
            self.pool.mark_errored(member_id, "warmup failed")
        else:
            self.pool.mark_ready(member_id, self.now)

    # --- control -----------------------------------------------------------------------
    def observe(self) -> Observation:
        views = tuple(ReplicaView(r.replica_id, r.phase, r.outstanding) for r in self.replicas.values())
        rate = self.tick_arrivals / self.cfg.tick_s
        waiting = sum(len(r.queue) for r in self.replicas.values() if r.phase is ReplicaPhase.READY)
        return Observation(views, request_rate=rate, queued=len(self.held), waiting=waiting)

    def tick(self) -> None:
        self.flush_held()
        decision, self.state = step(self.cfg.engine, self.observe(), self.state, self.cfg.scaling, self.now)
        self.apply(decision)
        self.record()
        if self.now + self.cfg.tick_s < self.trace.duration_s:
            self.push(self.now + self.cfg.tick_s, _Event.TICK)

    def record(self) -> None:
        phases = [r.phase for r in self.replicas.values()]
        lat = sorted(self.tick_latencies)
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None
        self.timeline.append(
            TimelinePoint(
                at=self.now,
                request_rate=self.tick_arrivals / self.cfg.tick_s,
                hot=phases.count(ReplicaPhase.READY),
                warming=phases.count(ReplicaPhase.WARMING),
                pooled=self.pool.standby if self.pool is not None else 0,
                p99_latency_s=p99,
                sla_misses=self.tick_misses,
            )
        )
        self.tick_arrivals = 0
        self.tick_latencies = []
        self.tick_misses = 0

    def setup(self) -> None:
        initial = self.cfg.initial_hot
        for _ in range(self.cfg.scaling.min_hot if initial is None else initial):
            self.new_replica(ReplicaPhase.READY, None)
        if self.pool is not None:
            for member_id in self.pool.reap(0.0).started:
                self.pool.mark_ready(member_id, 0.0)
        for at in self.trace.crashes:
            self.push(at, _Event.CRASH)
        self.push(0.0, _Event.TICK)

    def run(self) -> SimReport:
        self.setup()
        arrivals = self.trace.arrivals
        i = 0
        while i < len(arrivals) or self.events:
            if i < len(arrivals) and (not self.events or arrivals[i] <= self.events[0][0]):
                self.advance(arrivals[i])
                self.arrive(i)
                i += 1
                continue
            at, _, kind, replica_id, request = heapq.heappop(self.events)
            self.advance(at)
            self.dispatch(kind, replica_id, request)
        self.advance(self.trace.duration_s)
        self.refused += len(self.held)
        return self.report()

    def dispatch(self, kind: _Event, replica_id: str, request: int) -> None:
        if kind is _Event.COMPLETE:
            self.complete(replica_id, request)
        elif kind is _Event.READY:
            self.became_ready(replica_id)
        elif kind is _Event.POOL_READY:
            self.pool_member_ready(replica_id)
        elif kind is _Event.TICK:
            self.tick()
        elif kind is _Event.CRASH:
            self.crash()
        elif kind is _Event.ADMITTED:
            self.flush_held()
        elif kind is _Event.HIBERNATED:
            self.preparing -= 1
            self.sleeping += 1
        elif kind is _Event.DRAIN_DUE and replica_id in self.replicas:
            replica = self.replicas[replica_id]
            replica.drain_due = True
            self.maybe_remove(replica)

    def report(self) -> SimReport:
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        return SimReport(
            trace=self.trace.name,
            requests=len(self.trace.arrivals),
            served=len(lat),
            refused=self.refused,
            crashed=self.crashed,
            late=self.late,
            slow=self.slow,
            met_no_ready=self.met_no_ready,
            below_floor_s=self.below_floor_s,
            hot_hours=self.hot_hours,
            warming_hours=self.warming_hours,
            pooled_hours=self.pooled_hours,
            p50_latency_s=pct(0.50),
            p99_latency_s=pct(0.99),
            pool_claims=self.claims,
            cold_starts=self.cold_starts,
            timeline=tuple(self.timeline),
            hibernated_hours=self.hibernated_hours,
            hibernated_price=self.cfg.hibernated_price,
            slim_hours=self.slim_hours,
            slim_price=self.cfg.slim.price if self.cfg.slim is not None else 1.0,
            resumes=self.resumes,
        )


def simulate(trace: Trace, config: SimConfig, rng: random.Random) -> SimReport:
    """Run ``config``'s policy (and pool) over ``trace``; deterministic for a seeded ``rng``."""
    return Simulation(trace, config, rng).run()
