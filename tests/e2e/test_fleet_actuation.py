"""One actuation path: the simulator and the fleet's control loop, driven by the same random
decision sequences through the shared ``actuate``, end in the same replica and pool states.
Decisions name replicas to trade for READY standbys too (the swap step: a traded cold start is
parked as a standby), and pools that reuse the replicas scaled in (a drained replica or claimed
standby parked as the pool's standby), so those transitions are held to the same books on both
sides.

The fleet side is real: HAProxy and ``warmgate serve`` processes launched, promoted, drained
and killed through the runtime API. Nothing probes them meanwhile, so what is compared is
what each side's books say after every step, and HAProxy's own view of every slot.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.e2e.haproxy import requires_haproxy
from tests.e2e.process import free_port
from warmgate.autoscaling.model import Decision, ReplicaPhase, ScalingConfig, ScalingMode
from warmgate.autoscaling.pool import MemberState, PoolConfig, WarmPool
from warmgate.autoscaling.scenario import SimConfig
from warmgate.autoscaling.simulator import Simulation
from warmgate.autoscaling.traces import Trace
from warmgate.fleet.control import ControlLoop, FleetPool
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import MatchKey
from warmgate.fleet.store.sqlite import SqlitePoolStore
from warmgate.fleet.stored_pool import StoredPool

pytestmark = [pytest.mark.e2e, requires_haproxy]

_LIVE = (MemberState.WARMING, MemberState.READY)


@dataclass(frozen=True)
class Decide:
    start: int
    drain_picks: tuple[int, ...]
    replace_picks: tuple[int, ...]
    target: int  # what the pool follows
    swap_picks: tuple[int, ...] = ()


@dataclass(frozen=True)
class StandbyReady:
    pick: int


picks = st.lists(st.integers(0, 7), max_size=2).map(tuple)
step = st.one_of(
    st.builds(Decide, st.integers(0, 2), picks, picks.map(lambda p: p[:1]), st.integers(1, 5), picks),
    st.builds(StandbyReady, st.integers(0, 3)),
)
pool_config = st.builds(
    lambda size, prepared, reuse: PoolConfig(
        target_size=size, max_size=3, max_prepared=prepared, reuse_on_scale_in=reuse
    ),
    st.integers(0, 2),
    st.one_of(st.none(), st.integers(2, 4)),
    st.booleans(),  # a replica named to drain goes back to a short pool (claimed ones too)
)


# Always tried: a standby is launched (at 1), then a cold start (at 2, the standby still
# warming); the standby turns READY and the next decision trades it for that cold start (the
# swap step), which the pool adopts as its standby. The two launched at 0, before the standby,
# are offered too and kept: a trade gains nothing on a start that began first.
SWAP = (
    PoolConfig(target_size=1, max_size=3),
    [
        Decide(0, (), (), 3),
        Decide(1, (), (), 3),
        StandbyReady(0),
        Decide(0, (), (), 3, (0, 2)),
        Decide(1, (), (), 3),
    ],
)


# Always tried: the pool keeps 3 - target standbys and reuses what is scaled in. Its standby is
# READY (at 2), claimed when the fleet grows to 3 (at 3: no top-up, the pool wants none), and
# scaled in again (at 4): it goes back to the pool READY, nothing launched; then a replica of
# the floor is scaled in too (at 5): the pool now wants 3 - 1 = 2, so it is adopted as well.
REUSE = (
    PoolConfig(target_size=1, max_size=3, max_prepared=3, reuse_on_scale_in=True),
    [
        Decide(0, (), (), 2),
        StandbyReady(0),
        Decide(1, (), (), 3),
        Decide(0, (2,), (), 2),
        Decide(0, (0,), (), 1),
    ],
)


def _pool_states(pool: FleetPool) -> dict[str, MemberState]:
    return {m.member_id: m.state for m in pool.members()}


def _pick(ids: list[str], picks: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(ids[i % len(ids)] for i in picks)) if ids else ()


def _in_memory(config: PoolConfig) -> FleetPool:
    return WarmPool(config, id_prefix="standby")


def _in_a_store(config: PoolConfig) -> FleetPool:
    store = SqlitePoolStore(":memory:", config)
    return StoredPool(store, MatchKey.of("sha256:model", "v1", "cpu"), "fleet", 0.0, lease_ttl_s=30.0)


@given(config=pool_config, steps=st.lists(step, min_size=1, max_size=5))
@example(config=SWAP[0], steps=SWAP[1])
@example(config=REUSE[0], steps=REUSE[1])
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_simulator_and_fleet_end_in_the_same_states(
    config: PoolConfig, steps: list[Decide | StandbyReady], linear_dir: Path
) -> None:
    _run_both(config, steps, linear_dir, _in_memory)


@given(config=pool_config, steps=st.lists(step, min_size=1, max_size=5))
@example(config=SWAP[0], steps=SWAP[1])
@example(config=REUSE[0], steps=REUSE[1])
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_simulator_and_a_fleet_with_its_pool_in_a_store_end_in_the_same_states(
    config: PoolConfig, steps: list[Decide | StandbyReady], linear_dir: Path
) -> None:
    """The fleet's books in a SQLite pool store (``StoredPool``), the simulator's in memory:
    the same sequence gives the same states. Store member ids are random, so each is matched
    to the simulator's member started in the same place of the same reap."""
    _run_both(config, steps, linear_dir, _in_a_store)


def _run_both(
    config: PoolConfig,
    steps: list[Decide | StandbyReady],
    linear_dir: Path,
    books: Callable[[PoolConfig], FleetPool],
) -> None:
    short = Path(tempfile.mkdtemp(prefix="wg-act-"))
    settings_ = HaproxySettings(port=free_port(), socket=short / "haproxy.sock")
    fleet = Fleet(ReplicaSpec(linear_dir, drain_delay_s=0.0), settings_, short / "fleet", slots=40)
    fleet.start()
    try:
        fleet_pool = books(config)
        loop = ControlLoop(fleet, ScalingConfig(), fleet_pool)
        trace = Trace("none", 1000.0, (), ())
        sim = Simulation(trace, SimConfig(pool=config), random.Random(0))
        assert sim.pool is not None
        alias: dict[str, str] = {}  # simulator member id -> fleet member id

        def named(ids: Iterable[str]) -> tuple[str, ...]:
            return tuple(alias.get(rid, rid) for rid in ids)

        for _ in range(2):
            fleet.launch(Role.SERVING, 0.0)
            sim.cold_start(0.0)
        for n, action in enumerate(steps, start=1):
            now = float(n)
            sim.advance(now)
            serving = sorted(rid for rid, p in sim.serving().items() if p is not ReplicaPhase.DRAINING)
            if isinstance(action, StandbyReady):
                warming = sorted(m.member_id for m in sim.pool.members() if m.state is MemberState.WARMING)
                if warming:
                    chosen = warming[action.pick % len(warming)]
                    sim.pool.mark_ready(chosen, now)
                    fleet_pool.mark_ready(alias.get(chosen, chosen), now)  # a traded one keeps its id
                continue
            drain = _pick(serving, action.drain_picks)
            rest = [rid for rid in serving if rid not in drain]
            replace = _pick(rest, action.replace_picks)
            swap = _pick([rid for rid in rest if rid not in replace], action.swap_picks)
            decision = Decision(
                target=action.target,
                start=action.start,
                drain=drain,
                replace=replace,
                mode=ScalingMode.STABLE,
                hot=0,
                warming=len(serving),
                reason="generated",
                swap=swap,
            )
            simulated = sim.apply(decision)
            fleet_ids = {"drain": named(drain), "replace": named(replace), "swap": named(swap)}
            real = loop.apply(dataclasses.replace(decision, **fleet_ids), now)
            assert simulated.pool is not None and real.pool is not None
            assert len(simulated.pool.started) == len(real.pool.started)
            alias.update(zip(simulated.pool.started, real.pool.started, strict=True))
            assert (named(simulated.claimed), simulated.cold_started) == (real.claimed, real.cold_started)
            traded = [(alias.get(s.claimed, s.claimed), s.replaced, s.pooled) for s in simulated.swapped]
            assert traded == [(s.claimed, s.replaced, s.pooled) for s in real.swapped]
            assert (named(simulated.reused), named(simulated.drained)) == (real.reused, real.drained)

            fleet_serving = {r.replica_id: r.phase for r in fleet.replicas() if r.role is Role.SERVING}
            assert fleet_serving == dict(zip(named(sim.serving()), sim.serving().values(), strict=True))
            sim_states = _pool_states(sim.pool)
            assert _pool_states(fleet_pool) == dict(zip(named(sim_states), sim_states.values(), strict=True))
            standby_processes = {
                r.replica_id
                for r in fleet.replicas()
                if r.role is Role.STANDBY and r.phase is not ReplicaPhase.DRAINING
            }
            live_members = {m.member_id for m in fleet_pool.members() if m.state in _LIVE}
            assert standby_processes == live_members
            backend = fleet.backend()
            for r in fleet.replicas():
                status = backend.server(r.slot).status
                if r.role is Role.STANDBY and r.phase is not ReplicaPhase.DRAINING:
                    assert status == "MAINT", f"standby {r.replica_id} must stay out of rotation"
                if r.role is Role.SERVING and r.phase is not ReplicaPhase.DRAINING:
                    assert status != "MAINT", f"serving {r.replica_id} must be admitted"
    finally:
        fleet.close(timeout_s=10.0)
        shutil.rmtree(short, ignore_errors=True)
