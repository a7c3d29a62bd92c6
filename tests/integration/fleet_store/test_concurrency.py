"""Several controllers, each with its own connection, racing on one pool.

Every claimer waits at a barrier, so the claims overlap; the stores must hand each READY
member out exactly once and answer the surplus claims with PoolEmpty, never an error.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from multiprocessing.queues import Queue
from typing import Any

from tests.integration.fleet_store.conftest import OpenStore, StoreSpec
from warmgate.autoscaling.pool import MemberState, PoolConfig, PoolEmpty
from warmgate.fleet.store import MatchKey, PoolStore

KEY = MatchKey.of("sha256:cccc", "v3", "cpu", {"batch": "8"})
STALE = MatchKey.of("sha256:cccc", "v2", "cpu", {"batch": "8"})
JOIN_TIMEOUT_S = 120.0


def claim_all(
    store: PoolStore, name: str, attempts: int, start: Callable[[], object]
) -> tuple[list[str], int]:
    """Join, wait for the others, then claim ``attempts`` times: (claimed ids, empties)."""
    controller = store.join(name, now=10.0).controller_id
    claimed: list[str] = []
    empty = 0
    start()
    for _ in range(attempts):
        try:
            claimed.append(store.claim(KEY, controller, now=11.0).member_id)
        except PoolEmpty:
            empty += 1
    return claimed, empty


def fill(store: PoolStore, ready: int) -> set[str]:
    owner = store.join("filler", now=0.0).controller_id
    ids = {f"m-{n:02d}" for n in range(ready)}
    for member_id in sorted(ids):
        store.register(member_id, KEY, owner, now=0.0)
        store.mark_ready(member_id, 1.0)
    store.register("stale", STALE, owner, now=0.0)
    store.mark_ready("stale", 0.5)  # older than every fresh member, and must stay put
    return ids


def check(store: PoolStore, ready: set[str], results: list[tuple[list[str], int]], attempts: int) -> None:
    claims = Counter(member_id for claimed, _ in results for member_id in claimed)
    assert set(claims) == ready  # every member was claimed ...
    assert max(claims.values()) == 1  # ... exactly once
    assert sum(empty for _, empty in results) == len(results) * attempts - len(ready)
    assert store.counts(KEY)[MemberState.CLAIMED] == len(ready)
    assert store.get("stale").state is MemberState.READY


def test_concurrent_claims_from_threads_hand_out_each_member_once(open_store: OpenStore) -> None:
    controllers, attempts = 6, 3
    ready = fill(open_store(), 12)  # 18 attempts for 12 members: 6 must fail fast
    stores = [open_store() for _ in range(controllers)]
    barrier = threading.Barrier(controllers, timeout=JOIN_TIMEOUT_S)
    results: list[tuple[list[str], int]] = [([], 0)] * controllers
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            results[n] = claim_all(stores[n], f"c{n}", attempts, barrier.wait)
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(controllers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    check(stores[0], ready, results, attempts)
    owners = {m.member_id: m.owner for m in stores[0].members(KEY)}
    for n, (claimed, _) in enumerate(results):
        assert all(owners[member_id].startswith(f"c{n}-") for member_id in claimed)


def _claim_in_child(spec: StoreSpec, name: str, attempts: int, barrier: Any, out: Queue[Any]) -> None:
    store = spec.open(PoolConfig())
    try:
        out.put(claim_all(store, name, attempts, barrier.wait))
    finally:
        store.close()


def test_concurrent_claims_from_processes_hand_out_each_member_once(
    store_spec: StoreSpec, open_store: OpenStore
) -> None:
    controllers, attempts = 3, 4
    ready = fill(open_store(), 8)  # 12 attempts for 8 members
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(controllers, timeout=JOIN_TIMEOUT_S)
    out: Queue[Any] = ctx.Queue()
    children = [
        ctx.Process(target=_claim_in_child, args=(store_spec, f"p{n}", attempts, barrier, out))
        for n in range(controllers)
    ]
    for child in children:
        child.start()
    results = [out.get(timeout=JOIN_TIMEOUT_S) for _ in children]
    for child in children:
        child.join(JOIN_TIMEOUT_S)
    assert [child.exitcode for child in children] == [0] * controllers
    check(open_store(), ready, results, attempts)


def test_concurrent_top_ups_never_overshoot_the_target(open_store: OpenStore) -> None:
    controllers, target = 5, 4
    stores = [open_store(PoolConfig(target_size=target, max_size=target)) for _ in range(controllers)]
    barrier = threading.Barrier(controllers, timeout=JOIN_TIMEOUT_S)
    started: list[tuple[str, ...]] = [()] * controllers
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            controller = stores[n].join(f"c{n}", now=0.0).controller_id
            barrier.wait()
            started[n] = stores[n].top_up(KEY, target, controller, now=1.0)
        except BaseException as exc:  # re-raised on the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(controllers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    if errors:
        raise errors[0]
    assert sum(len(ids) for ids in started) == target
    assert stores[0].counts(KEY)[MemberState.WARMING] == target
