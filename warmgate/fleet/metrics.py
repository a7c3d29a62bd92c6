"""The fleet's and the warm pool's own metrics, in Prometheus format.

Updated once per control tick by :class:`~warmgate.fleet.control.ControlLoop`; served by
``warmgate fleet --metrics-port``. Times are on the control loop's clock.

- ``warmgate_fleet_replicas{role,phase}``: replica processes by role and phase;
- ``warmgate_pool_members{state}``: the warm pool's books by member state;
- ``warmgate_pool_claim_seconds``: from the decision to the claimed standby admitted to
  HAProxy's rotation (the runtime API calls done);
- ``warmgate_pool_claim_to_first_request_seconds``: from the decision to the first request the
  claimed replica served (its ``/invocations`` count rose; resolution one tick);
- ``warmgate_replica_start_to_ready_seconds``: from launch to the first probe that saw READY;
- ``warmgate_fleet_no_ready_replica_responses_total``: requests HAProxy answered 503 itself
  because no server could take them (requests that met no ready replica);
- ``warmgate_fleet_queued_requests``: requests waiting in HAProxy's backend queue now;
- with a pool store (:meth:`FleetMetrics.watch_store`), every pool's member statuses by key,
  SageMaker's names mapped onto ours (:mod:`warmgate.fleet.store.metrics`):
  ``warmgate_pool_member_status{key,status}``, ``warmgate_pool_members_terminated_total{key}``,
  ``warmgate_pool_member_reuses_total{key}``, read from the store at each scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.autoscaling.pool import Member, MemberState
from warmgate.fleet.fleet import ReplicaInfo, Role
from warmgate.fleet.runtime_api import BackendStat
from warmgate.fleet.store.metrics import PoolStatusCollector
from warmgate.fleet.store.protocol import PoolStore

_FAST = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
_SLOW = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass
class _Claim:
    at: float
    invocations: int


class FleetMetrics:
    """One registry of fleet and pool metrics, and the bookkeeping behind the timings."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.replicas = Gauge(
            "warmgate_fleet_replicas", "replica processes by role and phase", ["role", "phase"], registry=r
        )
        self.members = Gauge("warmgate_pool_members", "warm-pool members by state", ["state"], registry=r)
        self.claim_seconds = Histogram(
            "warmgate_pool_claim_seconds",
            "decision to the claimed standby admitted to rotation",
            buckets=_FAST,
            registry=r,
        )
        self.claim_to_first = Histogram(
            "warmgate_pool_claim_to_first_request_seconds",
            "decision to the claimed replica's first served request",
            buckets=_FAST,
            registry=r,
        )
        self.start_to_ready = Histogram(
            "warmgate_replica_start_to_ready_seconds",
            "replica launch to its first READY probe",
            buckets=_SLOW,
            registry=r,
        )
        self.no_ready = Counter(
            "warmgate_fleet_no_ready_replica_responses",
            "requests HAProxy answered 503 itself: no ready replica could take them",
            registry=r,
        )
        self.queued = Gauge(
            "warmgate_fleet_queued_requests", "requests waiting in HAProxy's backend queue", registry=r
        )
        self._claims: dict[str, _Claim] = {}
        self._ready_seen: set[str] = set()
        self._no_ready_seen = 0

    def watch_store(self, store: PoolStore, clock: Callable[[], float]) -> None:
        """Export the members' statuses of every pool in ``store`` (read at each scrape;
        ``clock`` is the store's)."""
        self.registry.register(PoolStatusCollector(store, clock))

    def claimed(self, replica_id: str, decided_at: float, admitted_at: float, invocations: int) -> None:
        self.claim_seconds.observe(admitted_at - decided_at)
        self._claims[replica_id] = _Claim(decided_at, invocations)

    def update(
        self, replicas: Iterable[ReplicaInfo], members: Iterable[Member], backend: BackendStat, now: float
    ) -> None:
        seen = tuple(replicas)
        for role in Role:
            for phase in ReplicaPhase:
                count = sum(1 for r in seen if r.role is role and r.phase is phase)
                self.replicas.labels(role.value, phase.value).set(count)
        books = tuple(members)
        for state in MemberState:
            self.members.labels(state.value).set(sum(1 for m in books if m.state is state))
        for r in seen:
            if r.ready_at is not None and r.replica_id not in self._ready_seen:
                self._ready_seen.add(r.replica_id)
                self.start_to_ready.observe(r.ready_at - r.started_at)
            claim = self._claims.get(r.replica_id)
            if claim is not None and r.load.invocations > claim.invocations:
                self.claim_to_first.observe(now - claim.at)
                del self._claims[r.replica_id]
        live = {r.replica_id for r in seen}
        self._claims = {rid: c for rid, c in self._claims.items() if rid in live}
        self._ready_seen &= live
        if backend.no_server_503 > self._no_ready_seen:
            self.no_ready.inc(backend.no_server_503 - self._no_ready_seen)
        self._no_ready_seen = max(self._no_ready_seen, backend.no_server_503)
        self.queued.set(backend.queued)
