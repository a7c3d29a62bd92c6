"""A x10 burst from a separate client process against the real fleet: the policy claims the
READY standby, the claimed replica serves its first request within a second of the decision, and
the replicas' own counters show that no request reached one that was not READY.

The client is its own Python process (httpx threads), so the load competes with the fleet as
real clients would, not from inside the control loop's process.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.haproxy import requires_haproxy
from tests.e2e.process import free_port
from warmgate.autoscaling.model import ReplicaPhase, ScalingConfig, TargetMetric
from warmgate.autoscaling.pool import PoolConfig, WarmPool
from warmgate.fleet.control import Background, ControlLoop
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import HOST, ReplicaSpec

pytestmark = [pytest.mark.e2e, requires_haproxy]

CLIENT = """
import json, sys, threading, time
import httpx
url, workers, seconds, body_path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
body = open(body_path, "rb").read()
statuses = []
lock = threading.Lock()
def run():
    end = time.monotonic() + seconds
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < end:
            code = client.post(url, content=body, headers={"Content-Type": "application/x-npy"}).status_code
            with lock:
                statuses.append(code)
threads = [threading.Thread(target=run) for _ in range(workers)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(statuses))
"""


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout_s}s waiting for: {what}"
        time.sleep(0.05)


def _sample(loop: ControlLoop, name: str) -> float:
    text = generate_latest(loop.metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and not s.labels:
                return float(s.value)
    return 0.0


def _received_by_phase(port: int) -> dict[str, float]:
    """The replica's own count of the inference requests it received, by its phase on arrival."""
    text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=5).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "warmgate_requests_received_total":
                counts[s.labels["phase"]] = counts.get(s.labels["phase"], 0.0) + s.value
    return counts


def _client(url: str, workers: int, seconds: float, body: Path) -> subprocess.Popen[str]:
    args = [sys.executable, "-c", CLIENT, url + "/invocations", str(workers), str(seconds), str(body)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


def test_a_x10_burst_claims_the_standby_which_serves_within_a_second(slow_dir: Path, tmp_path: Path) -> None:
    body = tmp_path / "body.npy"
    buf = io.BytesIO()
    np.save(buf, np.ones((4, 384), np.float32))
    body.write_bytes(buf.getvalue())
    short = Path(tempfile.mkdtemp(prefix="wg-burst-"))
    settings = HaproxySettings(port=free_port(), socket=short / "haproxy.sock")
    fleet = Fleet(ReplicaSpec(slow_dir, drain_delay_s=0.5), settings, tmp_path / "fleet", slots=8)
    fleet.start()
    pool = WarmPool(PoolConfig(target_size=1, max_size=1), id_prefix="standby")
    scaling = ScalingConfig(
        min_hot=2,
        max_replicas=4,
        metric=TargetMetric.IN_FLIGHT,
        target_per_replica=1.0,
        metric_window_s=2.0,
        panic_window_s=0.5,
        scale_in_window_s=120.0,
    )
    loop = ControlLoop(fleet, scaling, pool, tick_s=0.1)
    background = Background(loop).start()
    try:
        _until(
            lambda: (
                len(fleet.in_rotation()) == 2
                and any(r.role is Role.STANDBY and r.phase is ReplicaPhase.READY for r in fleet.replicas())
            ),
            "two hot replicas and one READY standby",
        )
        base = _client(fleet.url, 1, 4.0, body)  # one client: the base load
        _until(lambda: sum(r.load.invocations for r in fleet.replicas()) >= 5, "the base load flowing")
        burst = _client(fleet.url, 10, 6.0, body)  # x10, at once
        claims = "warmgate_pool_claim_to_first_request_seconds_count"
        _until(lambda: _sample(loop, claims) >= 1, "a claimed standby serving")
        statuses = json.loads(burst.communicate(timeout=120)[0])
        statuses += json.loads(base.communicate(timeout=120)[0])
        first = _sample(loop, "warmgate_pool_claim_to_first_request_seconds_sum") / _sample(loop, claims)
        assert first < 1.0, f"the claimed standby served its first request {first:.3f} s after the decision"
        assert set(statuses) == {200}, f"statuses seen: {sorted(set(statuses))}"
        received = {r.replica_id: _received_by_phase(r.port) for r in fleet.replicas()}
        assert sum(c.get("ready", 0.0) for c in received.values()) >= len(statuses)
        early = {rid: c for rid, c in received.items() if set(c) - {"ready"}}
        assert not early, f"requests reached replicas that were not READY: {early}"
    finally:
        background.stop()
        fleet.close(timeout_s=10.0)
        shutil.rmtree(short, ignore_errors=True)
