"""The fleet's warm pool booked in a pool store (SQLite and a real PostgreSQL), with real
HAProxy and real ``warmgate serve`` replicas.

What each test proves is in its name; docs/pool-store.md ("The fleet's pool") says it at
more length.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import onnx_models
from tests.e2e.conftest import StartFleet
from tests.e2e.haproxy import requires_haproxy
from warmgate.autoscaling.model import Decision, ReplicaPhase, ScalingConfig, ScalingMode
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.control import Background, ControlLoop
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import PoolStore
from warmgate.fleet.store.postgres import PostgresPoolStore
from warmgate.fleet.store.sqlite import SqlitePoolStore
from warmgate.fleet.stored_pool import StoredPool

OpenStore = Callable[[PoolConfig, float], PoolStore]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Stores on the test's own database: a SQLite file, or a fresh PostgreSQL schema."""
    opened: list[PoolStore] = []
    where = (
        request.getfixturevalue("postgres_conninfo")
        if request.param == "postgres"
        else str(tmp_path / "pool.db")
    )

    def open_(config: PoolConfig, lease_ttl_s: float) -> PoolStore:
        store: PoolStore
        if request.param == "postgres":
            store = PostgresPoolStore(where, config, lease_ttl_s=lease_ttl_s)
        else:
            store = SqlitePoolStore(where, config, lease_ttl_s=lease_ttl_s)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for: {what}")
        time.sleep(0.05)


def _ready_standby(fleet: Fleet, replica_id: str) -> Callable[[], bool]:
    def ready() -> bool:
        fleet.refresh(time.time())
        info = {r.replica_id: r for r in fleet.replicas()}.get(replica_id)
        assert info is None or info.phase is not ReplicaPhase.FAILED, f"{replica_id} failed"
        return info is not None and info.phase is ReplicaPhase.READY

    return ready


def _start_one() -> Decision:
    return Decision(
        target=1,
        start=1,
        drain=(),
        replace=(),
        mode=ScalingMode.STABLE,
        hot=0,
        warming=0,
        reason="test",
    )


@requires_haproxy
def test_a_standby_booked_under_another_key_is_never_claimed_and_the_fleet_cold_starts(
    linear_dir: Path, start_fleet: StartFleet, open_store: OpenStore
) -> None:
    spec = ReplicaSpec(linear_dir, drain_delay_s=0.0)
    stale_args = ("--max-batch", "8")  # another option set: another key
    key = fleet_match_key(spec)
    stale_key = fleet_match_key(dataclasses.replace(spec, args=stale_args))
    assert stale_key != key
    fleet = start_fleet(spec)
    store = open_store(PoolConfig(target_size=0, max_size=2), 30.0)  # no top-ups: only ours
    pool = StoredPool(store, key, "fleet", time.time(), lease_ttl_s=30.0)
    loop = ControlLoop(fleet, ScalingConfig(min_hot=1, max_replicas=3), pool, clock=time.time)

    store.register("stale-1", stale_key, pool.controller_id, time.time())
    fleet.launch(Role.STANDBY, time.time(), replica_id="stale-1", args=stale_args)
    _until(_ready_standby(fleet, "stale-1"), "the stale standby warm")
    loop.tick()  # the loop books it READY from its probe (and cold-starts its floor of one)
    assert store.get("stale-1").state is MemberState.READY

    done = loop.apply(_start_one(), time.time())
    assert done.claimed == ()
    assert len(done.cold_started) == 1
    assert store.get("stale-1").state is MemberState.READY  # still parked, never promoted
    roles = {r.replica_id: r.role for r in fleet.replicas()}
    assert roles["stale-1"] is Role.STANDBY and roles[done.cold_started[0]] is Role.SERVING
    slot = {r.replica_id: r.slot for r in fleet.replicas()}["stale-1"]
    assert fleet.backend().server(slot).status == "MAINT"

    # The same steps with a standby of the fleet's own key: that one is claimed and promoted.
    store.register("fresh-1", key, pool.controller_id, time.time())
    fleet.launch(Role.STANDBY, time.time(), replica_id="fresh-1")
    _until(_ready_standby(fleet, "fresh-1"), "the matching standby warm")
    store.mark_ready("fresh-1", time.time())
    done = loop.apply(_start_one(), time.time())
    assert (done.claimed, done.cold_started) == (("fresh-1",), ())
    assert store.get("fresh-1").state is MemberState.CLAIMED
    assert {r.replica_id: r.role for r in fleet.replicas()}["fresh-1"] is Role.SERVING
    assert store.get("stale-1").state is MemberState.READY


@requires_haproxy
def test_a_fleet_restarted_on_the_same_sqlite_file_does_not_double_count_members(
    linear_dir: Path, start_fleet: StartFleet, tmp_path: Path
) -> None:
    spec = ReplicaSpec(linear_dir, drain_delay_s=0.0)
    key = fleet_match_key(spec)
    config = PoolConfig(target_size=1, max_size=1)
    path = tmp_path / "pool.db"
    ttl = 4.0  # long enough to see the second run top up while the dead run's member is booked
    scaling = ScalingConfig(min_hot=1, max_replicas=2)

    def run(fleet: Fleet) -> tuple[SqlitePoolStore, StoredPool, Background]:
        store = SqlitePoolStore(path, config, lease_ttl_s=ttl)
        pool = StoredPool(store, key, "fleet", time.time(), lease_ttl_s=ttl)
        background = Background(ControlLoop(fleet, scaling, pool, clock=time.time, tick_s=0.1)).start()
        return store, pool, background

    def ready(pool: StoredPool) -> list[str]:
        return [m.member_id for m in pool.members() if m.state is MemberState.READY]

    # First run: one standby READY, then the fleet dies without leaving (its processes too).
    first_fleet = start_fleet(spec)
    first_store, first, background = run(first_fleet)
    _until(lambda: len(ready(first)) == 1, "the first run's standby READY")
    background.stop()
    (old,) = ready(first)
    first_fleet.close(timeout_s=10.0)
    first_store.close()

    # Second run on the same file: the dead run's READY member is neither counted as one of
    # this fleet's standbys nor claimed; it leaves the books once its lease has lapsed.
    fleet = start_fleet(spec)
    store, second, background = run(fleet)
    try:
        _until(lambda: len(second.members()) == 1, "the second run's own standby launched")
        books = {m.member_id: m.state for m in store.members(key)}
        assert books[old] is MemberState.READY  # still booked (its lease has not lapsed yet)
        _until(lambda: len(ready(second)) == 1, "the second run's own standby READY")
        _until(
            lambda: {m.member_id for m in store.members(key)} == {m.member_id for m in second.members()},
            "the dead run's member reaped from the books",
        )
        (mine,) = ready(second)
        assert mine != old
        assert {r.replica_id for r in fleet.replicas() if r.role is Role.STANDBY} == {mine}
        standbys = store.counts(key)
        assert (standbys[MemberState.WARMING], standbys[MemberState.READY]) == (0, 1)
    finally:
        background.stop()

    # A clean stop leaves nothing on the books: leave() hands back what the fleet must stop.
    left = second.leave()
    assert {m.member_id for m in left} == {mine}
    for member in left:
        fleet.retire(member.member_id, time.time())
    assert store.members() == ()
    store.close()


def test_the_match_key_follows_the_model_files_and_the_serving_options(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    onnx_models.linear(model_dir / "model.onnx")
    spec = ReplicaSpec(model_dir)
    key = fleet_match_key(spec)
    assert fleet_match_key(ReplicaSpec(model_dir)) == key  # deterministic
    assert fleet_match_key(dataclasses.replace(spec, args=("--max-batch", "4"))) != key
    assert fleet_match_key(dataclasses.replace(spec, args=("--batch-sizes", "1,16"))) != key
    assert fleet_match_key(dataclasses.replace(spec, env={"WARMGATE_MAX_BATCH": "4"})) != key
    assert fleet_match_key(dataclasses.replace(spec, args=("--threads", "2"))) == key  # no behaviour change
    onnx_models.slow(model_dir / "model.onnx")  # other weights, same file name
    changed = fleet_match_key(spec)
    assert changed.model_digest != key.model_digest
    assert (changed.version, changed.device, changed.options) == (key.version, key.device, key.options)
