"""Controllers as separate processes, each with its own connection: 16 claimers racing for 8
members, and controllers SIGKILLed inside their claim transaction or just after it committed.

Processes come from a forkserver that imported the stores once, so starting 16 is cheap.
Every wait is on a condition with a deadline (a pipe message, a barrier, a process exit).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.fleet_store.conftest import OpenStore, StoreSpec
from tests.integration.fleet_store.holding import HoldingPostgres, HoldingSqlite
from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolEmpty
from warmgate.fleet.store import LeaseExpired, MatchKey, PoolEvent, PoolStore, claimed_while_claimed

KEY = MatchKey.of("sha256:9999", "v1", "cpu")
DEADLINE_S = 120.0
LEASE_S = 10.0
CONFIG = PoolConfig(max_size=16)


def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["tests.integration.fleet_store.holding", "tests.integration.fleet_store.test_killed_controllers"]
    )
    return ctx


def _claim_once(spec: StoreSpec, n: int, barrier: Any, out: Any) -> None:
    store = spec.open(CONFIG)
    try:
        controller = store.join(f"p{n}", now=10.0).controller_id
        barrier.wait()
        try:
            out.put(("claimed", store.claim(KEY, controller, now=11.0).member_id))
        except PoolEmpty as exc:
            out.put(("empty", str(exc)))
    finally:
        store.close()


def test_16_claiming_processes_share_8_members_and_the_rest_get_pool_empty(
    store_spec: StoreSpec, open_store: OpenStore
) -> None:
    store = open_store(CONFIG)
    filler = store.join("filler", now=0.0).controller_id
    members = {f"m-{n}" for n in range(8)}
    for member_id in sorted(members):
        store.register(member_id, KEY, filler, now=0.0)
        store.mark_ready(member_id, 1.0)
    # A standby still warming: a claimer that waited for one would wait until the deadline.
    store.register("warming", KEY, filler, now=0.0)

    ctx = _context()
    barrier = ctx.Barrier(16, timeout=DEADLINE_S)
    out = ctx.Queue()
    children = [ctx.Process(target=_claim_once, args=(store_spec, n, barrier, out)) for n in range(16)]
    for child in children:
        child.start()
    results = [out.get(timeout=DEADLINE_S) for _ in children]
    for child in children:
        child.join(DEADLINE_S)
    assert [child.exitcode for child in children] == [0] * 16

    claimed = Counter(value for kind, value in results if kind == "claimed")
    empties = [value for kind, value in results if kind == "empty"]
    assert set(claimed) == members and max(claimed.values()) == 1  # each member exactly once
    assert len(empties) == 8 and all("1 warming" in message for message in empties)
    assert store.get("warming").state is MemberState.WARMING
    events = store.events(KEY)
    assert claimed_while_claimed(events) == []
    assert Counter(e.member_id for e in events if e.event is PoolEvent.CLAIMED) == Counter(members)


def _doomed(spec: StoreSpec, pipe: Connection, mid_claim: bool) -> None:
    """A controller with one WARMING standby of its own that claims a member, then stops
    (inside the claim's transaction, or after its commit) until it is killed."""
    cls = HoldingPostgres if spec.kind == "postgres" else HoldingSqlite
    store = cls(spec.where, CONFIG, lease_ttl_s=LEASE_S)
    controller = store.join("doomed", now=100.0).controller_id
    store.register("doomed-standby", KEY, controller, now=100.0)
    pipe.send(("joined", controller))
    if mid_claim:
        store.hold = pipe
        store.claim(KEY, controller, now=101.0)
        raise AssertionError("the claim committed: it should have been held before its commit")
    member = store.claim(KEY, controller, now=101.0)
    pipe.send(("claimed", member.member_id))
    pipe.recv()  # never answered: killed here


def _kill_while_held(spec: StoreSpec, mid_claim: bool) -> str:
    """Run a doomed controller until it holds (or committed) its claim; SIGKILL it."""
    ctx = _context()
    parent, child_end = ctx.Pipe()
    child = ctx.Process(target=_doomed, args=(spec, child_end, mid_claim))
    child.start()
    try:
        assert parent.poll(DEADLINE_S), "the doomed controller never joined"
        kind, controller = parent.recv()
        assert kind == "joined"
        assert parent.poll(DEADLINE_S), "the doomed controller never reached its claim"
        message = parent.recv()
        assert message[0] == ("holding" if mid_claim else "claimed"), message
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(DEADLINE_S)
    assert child.exitcode == -signal.SIGKILL
    return str(controller)


def _fill_one(store: PoolStore) -> str:
    survivor = store.join("survivor", now=0.0).controller_id
    store.register("m", KEY, survivor, now=0.0)
    store.mark_ready("m", 1.0)
    return survivor


def _books_clean_of(store: PoolStore, dead: str) -> None:
    assert all(m.owner != dead for m in store.members()), "an orphan of the dead controller is on the books"
    with pytest.raises(LeaseExpired, match="unknown or was reaped"):
        store.heartbeat(dead, now=200.0)


def test_a_controller_killed_inside_its_claim_leaves_the_member_ready(
    store_spec: StoreSpec, open_store: OpenStore
) -> None:
    store = open_store(CONFIG, lease_ttl_s=1000.0)
    survivor = _fill_one(store)
    dead = _kill_while_held(store_spec, mid_claim=True)

    # Its lease lapses at 110; the reap errors and removes its own standby, nothing else.
    report = store.reap(survivor, now=111.0)
    assert report.expired_leases == (dead,)
    assert [m.member_id for m in report.removed] == ["doomed-standby"]
    assert store.get("m").state is MemberState.READY  # the claim never committed
    got: list[str] = []

    def claimed() -> bool:  # PostgreSQL frees the row once it notices the dead connection
        try:
            got.append(store.claim(KEY, survivor, now=112.0).member_id)
        except PoolEmpty:
            return False
        return True

    wait_until(claimed, DEADLINE_S, "the member held by the killed claim to be claimable")
    assert got == ["m"]
    _books_clean_of(store, dead)
    assert not [e for e in store.events(KEY) if e.member_id == "m" and e.controller == dead]


def test_a_controller_killed_after_its_claim_committed_has_the_member_recycled(
    store_spec: StoreSpec, open_store: OpenStore
) -> None:
    store = open_store(CONFIG, lease_ttl_s=1000.0)
    survivor = _fill_one(store)
    dead = _kill_while_held(store_spec, mid_claim=False)
    held = store.get("m")
    assert (held.state, held.owner) == (MemberState.CLAIMED, dead)

    assert store.reap(survivor, now=105.0).removed == ()  # its lease (to 110) still runs
    report = store.reap(survivor, now=111.0)
    assert report.expired_leases == (dead,)
    assert report.recycled == ("m",) and report.errored == ("doomed-standby",)
    assert sorted(m.member_id for m in report.removed) == ["doomed-standby", "m"]
    assert store.members() == ()
    _books_clean_of(store, dead)
    assert claimed_while_claimed(store.events(KEY)) == []
