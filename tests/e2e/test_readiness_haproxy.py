"""Readiness after READY, end to end: real ``warmgate serve`` replicas behind a real HAProxy that
probes ``/ping``, under steady load from a separate client process.

* A replica whose inference stalls is marked down within HAProxy's fall window, gets no new
  requests, and comes back (READY, UP, traffic) once the stall is released. No request is lost.
* A replica whose backend fails every batch after READY costs the client only the requests that
  reached it before it went DEGRADED.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.haproxy import requires_haproxy
from tests.e2e.reliability import CHECK_FALL, CHECK_INTER_MS, rig, steady_load, wait_until

pytestmark = [pytest.mark.e2e, requires_haproxy]

RATE = 40.0  # requests per second through HAProxy
# Time from /ping 503 to HAProxy's DOWN: the fall window (CHECK_FALL checks CHECK_INTER_MS
# apart, plus the check already in progress), with slack for a shared 2-core machine.
FALL_WINDOW_S = (CHECK_FALL + 1) * CHECK_INTER_MS / 1000 + 1.0


def test_a_stalled_replica_leaves_rotation_and_returns_without_losing_requests(tmp_path: Path) -> None:
    with rig(tmp_path) as r, steady_load(r.url, tmp_path, RATE) as outcomes:
        wait_until(lambda: sum(o.ok for o in outcomes()) >= 20, 30, "steady traffic")
        (r.model_dirs[0] / "stall").touch()
        unready = wait_until(lambda: r.ping(0) == 503, 10, "/ping 503 on the stalled replica")
        assert r.replicas[0].get("/ping").json()["phase"] == "degraded"
        assert r.replicas[0].get("/livez").status_code == 200
        down = wait_until(lambda: r.status(0).startswith("DOWN"), 10, "HAProxy marks s1 DOWN")
        assert down - unready <= FALL_WINDOW_S
        # Out of rotation: HAProxy opens no new session to it while the other replica serves.
        before, served = r.sessions(0), sum(o.ok for o in outcomes())
        wait_until(lambda: sum(o.ok for o in outcomes()) >= served + 20, 30, "traffic on s2 alone")
        assert r.sessions(0) == before
        (r.model_dirs[0] / "stall").unlink()
        wait_until(lambda: r.ping(0) == 200, 10, "/ping 200 after the stall")
        wait_until(lambda: r.status(0).startswith("UP"), 10, "HAProxy marks s1 UP again")
        back = r.sessions(0)
        wait_until(lambda: r.sessions(0) > back, 10, "HAProxy sends s1 traffic again")
    done = outcomes()
    assert len(done) >= 60
    failed = [o for o in done if not o.ok]
    assert failed == []  # the stalled ones finished after the release; later ones went to s2


def test_a_failing_backend_costs_only_the_requests_in_flight_when_it_went_bad(tmp_path: Path) -> None:
    with rig(tmp_path) as r, steady_load(r.url, tmp_path, RATE) as outcomes:
        wait_until(lambda: sum(o.ok for o in outcomes()) >= 20, 30, "steady traffic")
        went_bad = time.monotonic()
        (r.model_dirs[0] / "fail").touch()
        degraded = wait_until(lambda: r.ping(0) == 503, 10, "/ping 503 on the failing replica")
        body = r.replicas[0].get("/ping").json()
        assert body["phase"] == "degraded" and "device lost" in body["reason"]
        wait_until(lambda: r.status(0).startswith("DOWN"), 10, "HAProxy marks s1 DOWN")
        served = sum(o.ok for o in outcomes())
        wait_until(lambda: sum(o.ok for o in outcomes()) >= served + 20, 30, "traffic on s2 alone")
        (r.model_dirs[0] / "fail").unlink()
        wait_until(lambda: r.ping(0) == 200, 10, "a canary brings s1 back to READY")
        wait_until(lambda: r.status(0).startswith("UP"), 10, "HAProxy marks s1 UP again")
    done = outcomes()
    failed = [o for o in done if not o.ok]
    # Only requests sent before the replica went DEGRADED can fail: --degrade-after 3 batches
    # of one request, plus any already queued there; everything later was refused with 503 and
    # retried on s2 by HAProxy, or never sent to s1.
    assert all(went_bad - 0.5 <= o.start <= degraded for o in failed), failed
    assert len(failed) <= 3 + 2, failed
    assert all(o.status == 500 for o in failed), failed
