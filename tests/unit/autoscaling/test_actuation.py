"""The shared actuation sequence's swap step (``actuate``, step 4), on the simulator's virtual
replicas and the in-memory warm pool: a standby that turns READY while cold starts warm serves
in their place, and the cold start becomes the pool's standby. Figures worked out by hand.
And its reuse on scale-in (step 2): a replica scaled in refills a short pool."""

from __future__ import annotations

import dataclasses
import random

from warmgate.autoscaling.model import Decision, ReplicaPhase, ScalingConfig, ScalingMode, TargetMetric
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.autoscaling.scenario import ReplicaModel, SimConfig
from warmgate.autoscaling.simulator import Simulation
from warmgate.autoscaling.traces import Trace

# One request at a time, 0.8 s each: 1.25 requests/s a replica. Cold start 20 + 5 + 5 = 30 s.
REPLICA = ReplicaModel(
    concurrency=1, queue_depth=0, service_s=0.8, provision_s=20, load_s=5, warmup_s=5, claim_s=2
)
COLD_START_S = 30.0


def steps(*levels: tuple[float, float, float]) -> Trace:
    """Evenly spaced arrivals: ``(start, end, rate)`` per level."""
    arrivals: list[float] = []
    for start, end, rate in levels:
        arrivals += [start + (i + 0.5) / rate for i in range(int((end - start) * rate))]
    end = max(level[1] for level in levels)
    return Trace("steps", end, tuple(arrivals), (1.0,) * len(arrivals))


def rising() -> Simulation:
    """1 request/s, 2/s from 10 s, 3/s from 20 s to 120 s: one replica per request/s (target
    1), a floor of one and one standby."""
    config = SimConfig(
        scaling=ScalingConfig(
            min_hot=1, max_replicas=6, metric=TargetMetric.INVOCATIONS, target_per_replica=1.0
        ),
        replica=REPLICA,
        pool=PoolConfig(target_size=1, max_size=2),
        tick_s=2.0,
        floor=1,
    )
    return Simulation(steps((0, 10, 1), (10, 20, 2), (20, 120, 3), (120, 150, 1)), config, random.Random(0))


def test_a_standby_ready_while_cold_starts_warm_is_claimed_and_serves_sooner() -> None:
    sim = rising()
    report = sim.run()
    # Tick 12 sees 2 requests/s: it claims the standby (hot at 14) and the reaper launches its
    # replacement, READY at 12 + 30 = 42. Tick 22 sees 3/s: the pool has nothing READY, so it
    # cold-starts a replica, READY at 22 + 30 = 52. At 42 the replacement is READY while that
    # cold start warms: tick 42 claims it (hot at 44) and the cold start goes to the pool.
    assert sim.pool is not None
    books = {m.member_id: m for m in sim.pool.members()}
    replacement = books["standby-2"]
    assert replacement.ready_at == 42.0
    assert replacement.claimed_at is not None
    assert replacement.claimed_at - replacement.ready_at <= sim.cfg.tick_s
    third_hot = next(p.at for p in report.timeline if p.hot >= 3)
    assert third_hot <= replacement.ready_at + REPLICA.claim_s + sim.cfg.tick_s
    assert third_hot < 22.0 + COLD_START_S
    # The cold start finished as the pool's standby: READY at 52, and nothing else launched.
    traded = [m for m in books.values() if m.member_id.startswith("replica-")]
    assert [(m.state, m.ready_at) for m in traded] == [(MemberState.READY, 22.0 + COLD_START_S)]
    assert (report.pool_claims, report.cold_starts) == (2, 1)
    # Requests meet a READY replica sooner. From 20 s, 3 requests/s meet 2.5/s of hot room until
    # a third replica is hot; the backlog then drains at 0.75/s, so every arrival meets no ready
    # replica for (T - 20) x (1 + 0.5 / 0.75) s: 3 x 5/3 x (T - 20) = 5 (T - 20) requests. With
    # the cold start alone (T = 52) that is 160; with the swap (T = 44) 120, plus the first
    # step's few while the first claim took its 2 s.
    assert report.met_no_ready < 5 * (22.0 + COLD_START_S - 20.0)


def generated(start: int, swap: tuple[str, ...], target: int = 3) -> Decision:
    return Decision(
        target=target,
        start=start,
        drain=(),
        replace=(),
        mode=ScalingMode.PANIC,
        hot=0,
        warming=len(swap),
        reason="generated",
        swap=swap,
    )


def test_a_claimed_standby_on_its_way_in_is_not_traded_only_the_cold_start() -> None:
    config = SimConfig(replica=REPLICA, pool=PoolConfig(target_size=1, max_size=2))
    sim = Simulation(Trace("none", 1000.0, (), ()), config, random.Random(0))
    assert sim.pool is not None
    (first,) = sim.pool.reap(0.0).started
    sim.pool.mark_ready(first, 0.0)
    done = sim.apply(generated(1, ()))  # claims the standby; the reaper launches a replacement
    assert done.claimed == (first,) and done.pool is not None
    (second,) = done.pool.started
    sim.advance(1.0)
    (cold,) = sim.apply(generated(1, ())).cold_started  # nothing READY in the pool: a cold start

    sim.advance(5.0)
    sim.pool.mark_ready(second, 5.0)
    # Both are WARMING in the fleet's eyes: the claimed standby (its claim takes 2 s) and the
    # cold start. Only the cold start is traded, for the standby READY now; it goes on starting
    # as the pool's one standby (its age counting from its launch), so the reaper launches none.
    done = sim.apply(generated(0, (first, cold)))
    assert [(s.claimed, s.replaced, s.pooled) for s in done.swapped] == [(second, cold, True)]
    assert done.pool is not None and done.pool.started == ()
    assert set(sim.serving()) == {first, second}
    assert {m.member_id: m.state for m in sim.pool.members()} == {
        first: MemberState.CLAIMED,
        second: MemberState.CLAIMED,
        cold: MemberState.WARMING,
    }
    assert sim.pool.get(cold).created_at == 1.0


def test_a_cold_start_launched_with_or_before_the_standby_is_not_traded() -> None:
    """At start-up the floor and the first standby are launched together: the standby being
    READY a moment sooner gains nothing worth a trade."""
    config = SimConfig(replica=REPLICA, pool=PoolConfig(target_size=1, max_size=2))
    sim = Simulation(Trace("none", 1000.0, (), ()), config, random.Random(0))
    assert sim.pool is not None
    sim.advance(1.0)
    done = sim.apply(generated(2, ()))  # two cold starts; the reaper launches the standby with them
    assert done.pool is not None
    (standby,) = done.pool.started
    sim.advance(3.0)
    sim.pool.mark_ready(standby, 3.0)
    done = sim.apply(generated(0, tuple(reversed(done.cold_started))))
    assert done.swapped == ()
    assert sim.pool.get(standby).state is MemberState.READY


def test_without_a_ready_standby_nothing_is_traded() -> None:
    config = SimConfig(replica=REPLICA, pool=PoolConfig(target_size=1, max_size=2))
    sim = Simulation(Trace("none", 1000.0, (), ()), config, random.Random(0))
    done = sim.apply(generated(1, ()))  # the pool's standby is launched, not READY yet
    (cold,) = done.cold_started
    done = sim.apply(generated(0, (cold,)))
    assert done.swapped == ()
    assert set(sim.serving()) == {cold}


def scaled_in(reuse: bool, requests: tuple[float, ...] = ()) -> tuple[Simulation, Decision]:
    """Three READY replicas and an empty pool that wants one standby; the decision scales in
    ``replica-3``. ``requests`` arrive at those times (the router sends them to replica-1)."""
    config = SimConfig(
        replica=REPLICA,
        pool=PoolConfig(target_size=0, max_size=2, reuse_on_scale_in=reuse),
        initial_hot=3,
    )
    sim = Simulation(Trace("few", 1000.0, requests, (1.0,) * len(requests)), config, random.Random(0))
    sim.setup()
    return sim, scale_in_to_two("replica-3")


def scale_in_to_two(replica_id: str) -> Decision:
    """From three hot replicas to two, draining ``replica_id``; the pool wants one standby."""
    return Decision(
        target=2,
        start=0,
        drain=(replica_id,),
        replace=(),
        mode=ScalingMode.STABLE,
        hot=3,
        warming=0,
        reason="scale in",
        standbys=1,
    )


def test_a_replica_scaled_in_refills_a_reusing_pool_instead_of_a_cold_start() -> None:
    sim, decision = scaled_in(reuse=True)
    assert sim.pool is not None
    done = sim.apply(decision)
    assert (done.reused, done.drained) == (("replica-3",), ())
    assert done.pool is not None and done.pool.started == ()  # nothing launched to fill the pool
    assert set(sim.serving()) == {"replica-1", "replica-2"}
    assert {m.member_id: m.state for m in sim.pool.members()} == {"replica-3": MemberState.READY}
    # The next scale-out claims it back: serving a claim later, no cold start.
    again = dataclasses.replace(decision, target=3, start=1, drain=(), mode=ScalingMode.PANIC)
    assert sim.apply(again).claimed == ("replica-3",)
    assert sim.cold_starts == 0


def test_without_reuse_the_replica_scaled_in_leaves_and_the_pool_launches_a_standby() -> None:
    sim, decision = scaled_in(reuse=False)
    done = sim.apply(decision)
    assert (done.reused, done.drained) == ((), ("replica-3",))
    assert done.pool is not None and len(done.pool.started) == 1


def test_a_busy_replica_scaled_in_is_a_standby_at_once_and_loses_nothing_claimed_back_or_not() -> None:
    for claimed_back in (False, True):
        sim, decision = scaled_in(reuse=True, requests=(0.0,))
        assert sim.pool is not None
        sim.advance(0.0)
        sim.arrive(0)  # the least loaded replica first: all are empty, so the first, replica-1
        busy = next(r for r in sim.replicas.values() if r.outstanding)
        drain = dataclasses.replace(decision, drain=(busy.replica_id,))
        assert sim.apply(drain).reused == (busy.replica_id,)
        assert sim.pool.get(busy.replica_id).state is MemberState.READY
        assert sim.serving()[busy.replica_id] is ReplicaPhase.DRAINING  # takes nothing new
        if claimed_back:  # a burst claims it before its request is done: the same replica
            again = dataclasses.replace(decision, target=3, start=1, drain=(), mode=ScalingMode.PANIC)
            assert sim.apply(again).claimed == (busy.replica_id,)
        at, _, _, replica_id, request = next(e for e in sorted(sim.events) if e[3] == busy.replica_id)
        sim.advance(at)
        sim.complete(replica_id, request)  # the request completes
        assert sim.latencies == [REPLICA.service_s]  # served, not lost
        assert (busy.replica_id in sim.serving()) is claimed_back
        assert sim.cold_starts == 0


def test_a_claimed_standby_scaled_in_goes_back_to_the_pool_ready() -> None:
    config = SimConfig(replica=REPLICA, pool=PoolConfig(target_size=1, max_size=2, reuse_on_scale_in=True))
    sim = Simulation(Trace("none", 1000.0, (), ()), config, random.Random(0))
    assert sim.pool is not None
    sim.setup()  # two READY replicas and one READY standby
    (standby,) = (m.member_id for m in sim.pool.members())
    claim = generated(1, (), target=3)
    done = sim.apply(dataclasses.replace(claim, standbys=0))  # the pool wants none while scaled out
    assert done.claimed == (standby,) and done.pool is not None and done.pool.started == ()
    sim.advance(REPLICA.claim_s)
    sim.became_ready(standby)
    done = sim.apply(scale_in_to_two(standby))
    assert done.reused == (standby,) and done.drained == ()
    assert done.pool is not None and done.pool.started == ()  # no cold start refills the pool
    assert sim.pool.get(standby).state is MemberState.READY
    assert standby not in sim.serving()
