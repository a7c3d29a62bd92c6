"""Two ``warmgate fleet`` controllers share one PostgreSQL-backed pool under load, and no
standby is claimed twice.

Both fleets serve the same model, so their standbys are booked under one match key in one
store (a real, throwaway PostgreSQL server: tests/conftest.py). Each fleet runs under steady
load from its own process; twice, a hot replica of each fleet is SIGKILLed at the same
moment, so both policies replace it by claiming a READY standby at once. A thread watches
the store's rows throughout (claimed rows are deleted once their replica leaves).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from tests.e2e.books import BookWatch
from tests.e2e.fleet_process import FleetProcess, fleet_process, gone, pids
from tests.e2e.haproxy import requires_haproxy
from tests.e2e.model_load import read_rows, running
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import LeaseExpired, MatchKey, PoolStore, open_store

pytestmark = pytest.mark.e2e

ROUNDS = 2  # claims per fleet


def postgres_url(conninfo: str) -> str:
    """The ``postgresql://`` URL ``--pool-store`` takes, for a libpq key=value conninfo."""
    parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    user, dbname = parts.pop("user", "postgres"), parts.pop("dbname", "postgres")
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in parts.items())
    return f"postgresql://{user}@/{dbname}?{query}"


def load(url: str, out: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return running(url, out, workers=2)


def controller(fleet: FleetProcess) -> str:
    found = re.search(r"pool store: joined as (\S+) for", fleet.text())
    assert found is not None, fleet.text()
    return found.group(1)


def claims(fleet: FleetProcess) -> list[str]:
    """Every standby the fleet logged claiming, in order, repeats included: for the policy's
    target, or in place of a cold start still warming (a swap)."""
    found: list[str] = []
    for m in re.finditer(r"claimed \[([^\]]*)\]|standby (\S+) is READY: it serves in place of", fleet.text()):
        found += re.findall(r"'([^']+)'", m[1]) if m[1] is not None else [m[2]]
    return found


def launched(fleet: FleetProcess, role: str = r"\w+") -> dict[str, int]:
    """Replica id → pid of what the fleet launched in ``role`` (a pattern; default any)."""
    pattern = rf"launched (\S+) \({role}, generation \d+\) pid (\d+)"
    return {rid: int(pid) for rid, pid in re.findall(pattern, fleet.text())}


_ROLE_EVENT = re.compile(
    r"launched (?P<launched>\S+) \((?P<role>\w+), generation|promoted standby (?P<promoted>\S+) to "
    r"|parked (?P<parked>\S+) as a standby|removed (?P<removed>\S+) \("
)


def serving(fleet: FleetProcess) -> list[str]:
    """Replica ids serving now, by the fleet's log, oldest first: launched to serve or promoted
    from the pool, and since neither parked as a standby (a cold start a READY standby took the
    place of) nor removed."""
    now: dict[str, bool] = {}
    for m in _ROLE_EVENT.finditer(fleet.text()):
        if m["launched"]:
            now[m["launched"]] = m["role"] == "serving"
        elif m["promoted"]:
            now[m["promoted"]] = True
        else:
            now.pop(m["parked"] or m["removed"], None)
    return [rid for rid, serves in now.items() if serves]


def ready_standbys(store: PoolStore, key: MatchKey, owner: str) -> int:
    return sum(1 for m in store.members(key) if m.owner == owner and m.state is MemberState.READY)


ARGS = [
    "--replicas", "2", "--min-hot", "2", "--max-replicas", "4", "--pool", "1",
    "--tick-s", "0.1", "--drain-delay-s", "0.2", "--scale-in-window-s", "600",
    "--pool-lease-ttl-s", "10",
]  # fmt: skip


@requires_haproxy
def test_two_fleets_share_one_postgres_pool_under_load_and_no_standby_is_claimed_twice(
    linear_dir: Path, postgres_conninfo: str, short_dir: Path
) -> None:
    url = postgres_url(postgres_conninfo)
    key = fleet_match_key(ReplicaSpec(linear_dir))
    store = open_store(url, PoolConfig())  # as `warmgate fleet --pool-store URL` opens it
    with ExitStack() as stack:
        fleets = [
            stack.enter_context(fleet_process(linear_dir, short_dir / name, [*ARGS, "--pool-store", url]))
            for name in ("a", "b")
        ]
        for fleet in fleets:
            fleet.until(lambda f=fleet: f.in_rotation() == 2, "two replicas in rotation")
        owners = [controller(f) for f in fleets]
        assert owners[0] != owners[1]
        rows = [short_dir / f"{name}.jsonl" for name in ("a", "b")]
        killed_at: list[list[float]] = [[], []]  # wall-clock, as the load generator's rows
        with ExitStack() as running:
            watch = running.enter_context(BookWatch(open_store(url, PoolConfig())))
            for fleet, out in zip(fleets, rows, strict=True):
                running.enter_context(load(fleet.url, out))
            for round_ in range(1, ROUNDS + 1):
                for fleet, owner in zip(fleets, owners, strict=True):
                    fleet.until(lambda o=owner: ready_standbys(store, key, o) == 1, f"{owner}: standby READY")
                for fleet, out in zip(fleets, rows, strict=True):
                    fleet.until(lambda o=out, n=round_: len(read_rows(o)) >= 10 * n, "load flowing")
                for fleet, kills in zip(fleets, killed_at, strict=True):  # both at once: both claim together
                    victim = launched(fleet)[serving(fleet)[0]]
                    kills.append(time.time())
                    os.kill(victim, signal.SIGKILL)
                for fleet in fleets:
                    fleet.until(lambda f=fleet, n=round_: len(claims(f)) >= n, f"claim {round_}")
                    fleet.until(lambda f=fleet: f.in_rotation() == 2, "two replicas in rotation again")
            for fleet, out in zip(fleets, rows, strict=True):
                done = len(read_rows(out))
                fleet.until(lambda o=out, d=done: len(read_rows(o)) >= d + 10, "load after the last claim")
        # (the load generators and the watch stopped here; the fleets still run)

        claimed = [claims(f) for f in fleets]
        # Both fleets claimed; no member was claimed twice; each claimed only its own members
        # (standbys it launched, or cold starts of its own that a swap parked in the pool).
        all_claims = claimed[0] + claimed[1]
        assert all(len(mine) >= ROUNDS for mine in claimed), claimed
        assert len(all_claims) == len(set(all_claims)), claimed
        for fleet, mine in zip(fleets, claimed, strict=True):
            assert set(mine) <= set(launched(fleet)), (mine, fleet.text())
        # The store's rows agree: each claimed member was CLAIMED by exactly one controller,
        # the one whose fleet claimed it, and no other member was claimed.
        assert watch.claimed() == set(all_claims), dict(watch.seen)
        for owner, mine in zip(owners, claimed, strict=True):
            for member_id in mine:
                assert watch.claimers(member_id) == {owner}, dict(watch.seen)
        # The fleets' metrics count the same claims.
        for fleet, mine in zip(fleets, claimed, strict=True):
            assert fleet.metric("warmgate_pool_claim_seconds_count") == len(mine)

        for fleet in fleets:
            fleet.proc.send_signal(signal.SIGTERM)
        for fleet in fleets:
            assert fleet.proc.wait(60) == 0, fleet.text()
            assert all(gone(pid) for pid in pids(fleet.text()))

    # Every response of both fleets was 200: HAProxy retries a request a SIGKILLed replica
    # refused or dropped unanswered. All it cannot retry is one whose response had begun when
    # the kill came: such a failure must have been in flight at one of its fleet's kills, at
    # most one per load worker (2) per kill.
    for out, kills in zip(rows, killed_at, strict=True):
        answered = read_rows(out)
        failed = [r for r in answered if r["status"] != 200]
        assert answered and len(failed) <= 2 * len(kills), failed
        for r in failed:
            assert any(r["sent"] <= at + 0.5 and at <= r["done"] for at in kills), (r, kills)
    # The books end clean: no member, and both leases ended.
    assert store.members() == ()
    for owner in owners:
        with pytest.raises(LeaseExpired):
            store.heartbeat(owner, 0.0)
    store.close()
