"""``warmgate fleet`` as a process: serves through HAProxy, keeps a standby, drains on SIGTERM."""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.fleet_process import gone, kill_logged, pids
from tests.e2e.haproxy import requires_haproxy
from tests.e2e.process import free_port
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.cli import add_fleet_command, run_fleet
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.runtime_api import RuntimeApi
from warmgate.fleet.store.sqlite import SqlitePoolStore

pytestmark = pytest.mark.e2e


def test_add_fleet_command_registers_fleet_with_its_runner(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="warmgate")
    add_fleet_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", "--model-dir", str(tmp_path), "--pool", "1", "--min-hot", "3"])
    assert args.func is run_fleet
    assert (args.model_dir, args.replicas, args.port, args.pool, args.min_hot) == (tmp_path, 2, 8080, 1, 3)


@requires_haproxy
def test_fleet_command_serves_through_haproxy_and_drains_on_sigterm(
    linear_dir: Path, short_dir: Path
) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "warmgate.fleet", "--model-dir", str(linear_dir)]
    cmd += [
        "--port",
        str(port),
        "--replicas",
        "2",
        "--pool",
        "1",
        "--tick-s",
        "0.1",
        "--workdir",
        str(short_dir),
    ]
    log = short_dir / "fleet.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        api = RuntimeApi(short_dir / "haproxy.sock")
        deadline = time.monotonic() + 30

        def settled() -> bool:
            if not (short_dir / "haproxy.sock").exists():
                return False
            servers = api.show_stat().servers
            up = [s for s in servers if s.in_rotation]
            parked = [s for s in servers if s.status == "MAINT" and not s.address.endswith(":1")]
            return len(up) == 2 and len(parked) == 1

        while not settled():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # The pool's books are in the default store, WORKDIR/pool.db, keyed by the model.
        books = SqlitePoolStore(short_dir / "pool.db", PoolConfig())
        key = fleet_match_key(ReplicaSpec(linear_dir))
        while [(m.state, m.key) for m in books.members()] != [(MemberState.READY, key)]:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, (books.members(), log.read_text())
            time.sleep(0.1)
        body = io.BytesIO()
        np.save(body, np.ones((2, 4), np.float32))
        reply = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            content=body.getvalue(),
            headers={"Content-Type": "application/x-npy"},
            timeout=10,
        )
        assert reply.status_code == 200

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        text = log.read_text()
        started = pids(text)
        assert len(started) >= 4, text  # HAProxy, two replicas, one standby
        assert all(gone(pid) for pid in started), text
        assert "SIGTERM received: draining the fleet" in text and "fleet stopped" in text
        assert books.members() == ()  # the fleet left the store: nothing stale stays booked
        books.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        kill_logged(log.read_text())  # nothing left behind when an assertion failed


@requires_haproxy
def test_fleet_command_with_burst_capacity_keeps_standbys_only_after_a_jump(
    linear_dir: Path, short_dir: Path
) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "warmgate.fleet", "--model-dir", str(linear_dir), "--port", str(port)]
    cmd += ["--pool", "1", "--burst-capacity", "5", "--burst-horizon-s", "2", "--tick-s", "0.1"]
    cmd += ["--workdir", str(short_dir)]
    log = short_dir / "fleet.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    body = io.BytesIO()
    np.save(body, np.ones((1, 4), np.float32))
    url = f"http://127.0.0.1:{port}/invocations"

    def until(condition: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"{what}\n{log.read_text()}"
            time.sleep(0.1)

    try:
        api = RuntimeApi(short_dir / "haproxy.sock")
        until(lambda: (short_dir / "haproxy.sock").exists(), "HAProxy")
        until(lambda: len([s for s in api.show_stat().servers if s.in_rotation]) == 2, "two in rotation")
        books = SqlitePoolStore(short_dir / "pool.db", PoolConfig())
        assert books.members() == ()  # no jump seen: no standby, although --pool is 1
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + 30
            while not books.members():  # a burst from idle, until the policy names a standby
                assert time.monotonic() < deadline, log.read_text()
                reply = client.post(
                    url, content=body.getvalue(), headers={"Content-Type": "application/x-npy"}
                )
                assert reply.status_code == 200
        until(lambda: [m.state for m in books.members()] == [MemberState.READY], "the standby READY")
        books.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        kill_logged(log.read_text())
