"""Claim latency of the pool stores under concurrent claimers: p50/p99 per store.

    python scripts/bench_pool_claims.py                      # SQLite and PostgreSQL, 16 claimers
    python scripts/bench_pool_claims.py --stores sqlite --rounds 100 --json

Each round the bench books ``--pool`` READY members (8), then ``--claimers`` processes (16),
each with its own connection and controller lease, claim once at the same moment (a barrier):
``--pool`` of them get a member, the others ``PoolEmpty``. Every claim is timed around
``store.claim`` (``time.perf_counter``), so the figures include the round trip to the database
and the wait for SQLite's write lock, but no process start. After each round every claimer
drains and reaps the member it got (untimed), so the tables stay small.

SQLite is a file in a temporary folder (WAL). PostgreSQL is a throwaway local server started
the way the tests start it (:mod:`warmgate.fleet.store.local_postgres`: ``initdb`` + ``pg_ctl``
from Debian's ``postgresql`` package, UNIX socket, ``fsync=off``): figures for the store's own
work, not for a networked, durable server.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from warmgate.autoscaling.pool import PoolConfig, PoolEmpty
from warmgate.fleet.store import MatchKey, open_store
from warmgate.fleet.store.local_postgres import PostgresUnavailable, start_cluster

KEY = MatchKey.of("sha256:bench", "v1", "cpu", {"max_batch": "32"})
DEADLINE_S = 300.0


def _claimer(url: str, rounds: int, start: Any, done: Any, out: Any) -> None:
    store = open_store(url, PoolConfig(max_size=64), lease_ttl_s=3600.0)
    controller = store.join("bench", now=time.time()).controller_id
    samples: list[tuple[str, float]] = []
    for _ in range(rounds):
        start.wait()
        began = time.perf_counter()
        try:
            member = store.claim(KEY, controller, now=time.time())
        except PoolEmpty:
            samples.append(("empty", time.perf_counter() - began))
        else:
            samples.append(("claimed", time.perf_counter() - began))
            store.mark_draining(member.member_id, "bench round over", now=time.time())
        done.wait()
        store.reap(controller, now=time.time())  # removes its drained member; not timed
    store.leave(controller, now=time.time())
    store.close()
    out.put(samples)


def run(url: str, claimers: int, pool: int, rounds: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(claimers + 1, timeout=DEADLINE_S)
    done = ctx.Barrier(claimers + 1, timeout=DEADLINE_S)
    out = ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(url, rounds, start, done, out)) for _ in range(claimers)]
    for proc in procs:
        proc.start()
    store = open_store(url, PoolConfig(max_size=64), lease_ttl_s=3600.0)
    filler = store.join("filler", now=time.time()).controller_id
    try:
        for r in range(rounds):
            for n in range(pool):
                member_id = f"r{r}-m{n}"
                store.register(member_id, KEY, filler, now=time.time())
                store.mark_ready(member_id, time.time())
            start.wait()
            done.wait()
    except BaseException:
        start.abort()  # the claimers stop at once instead of at the barrier's deadline
        done.abort()
        raise
    samples = [sample for _ in procs for sample in out.get(timeout=DEADLINE_S)]
    for proc in procs:
        proc.join(DEADLINE_S)
    store.leave(filler)
    store.close()
    return {
        kind: _summary([s for k, s in samples if k == kind or kind == "all"])
        for kind in ("claimed", "empty", "all")
    }


def _summary(seconds: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "n": len(seconds),
        "p50_ms": 1000 * cuts[49],
        "p99_ms": 1000 * cuts[98],
        "max_ms": 1000 * max(seconds),
    }


@contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="warmgate-bench-") as folder:
        url = f"sqlite:///{folder}/pool.db"
        open_store(url, PoolConfig()).close()  # creates and migrates the file
        yield url


@contextmanager
def _postgres() -> Iterator[str]:
    cluster = start_cluster()
    try:
        open_store(cluster.url, PoolConfig(), migrate=True).close()
        yield cluster.url
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--claimers", type=int, default=16)
    parser.add_argument("--pool", type=int, default=8, help="READY members booked per round")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    machine = {
        "cpus": os.cpu_count(),
        "loadavg_1m_before": os.getloadavg()[0],
        "python": sys.version.split()[0],
    }
    results: dict[str, Any] = {}
    for name in args.stores.split(","):
        opener = {"sqlite": _sqlite, "postgres": _postgres}.get(name)
        if opener is None:
            parser.error(f"unknown store {name!r}: sqlite or postgres")
        try:
            with opener() as url:
                results[name] = run(url, args.claimers, args.pool, args.rounds)
        except PostgresUnavailable as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
    machine["loadavg_1m_after"] = os.getloadavg()[0]
    report = {
        "claimers": args.claimers,
        "pool": args.pool,
        "rounds": args.rounds,
        "machine": machine,
        **results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.claimers} claimers, {args.pool} READY members per round, {args.rounds} rounds; {machine}")
    print("| store | claims | p50 ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, by_kind in results.items():
        for kind in ("claimed", "empty", "all"):
            s = by_kind[kind]
            label = {"claimed": "got a member", "empty": "PoolEmpty", "all": "all"}[kind]
            cells = (
                f"{label} (n={s['n']})",
                f"{s['p50_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                f"{s['max_ms']:.2f}",
            )
            print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
