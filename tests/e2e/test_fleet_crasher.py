"""The replay's crashes on a real fleet: each kills one replica HAProxy routes to, never a
replica it already killed, and none when nothing is hot (as the simulator's crash does)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.e2e.conftest import StartFleet
from tests.e2e.haproxy import requires_haproxy
from warmgate.fleet.fleet import Role
from warmgate.fleet.replay import Crasher
from warmgate.fleet.replica import ReplicaSpec


@requires_haproxy
def test_each_crash_kills_a_different_routed_replica_and_none_once_nothing_is_hot(
    linear_dir: Path, start_fleet: StartFleet
) -> None:
    fleet = start_fleet(ReplicaSpec(linear_dir, drain_delay_s=0.0))
    serving = {fleet.launch(Role.SERVING, time.monotonic()) for _ in range(2)}
    fleet.launch(Role.STANDBY, time.monotonic(), replica_id="standby-1")  # never routed: not hot
    deadline = time.monotonic() + 60
    while len(fleet.in_rotation()) < 2:
        assert time.monotonic() < deadline, "the replicas never went into rotation"
        time.sleep(0.1)
    start = time.monotonic()
    # Three crashes 50 ms apart: too soon for HAProxy (200 ms checks) or the fleet (no probe
    # runs here) to see the first two die, so the crasher must tell a replica it killed from
    # a hot one itself. (Its books do it even where the killed process has not exited yet, as
    # happened under a replay's load 80 ms after a SIGKILL; on an idle machine the exit alone
    # would do.)
    with Crasher(fleet, (0.1, 0.15, 0.2), start, seed=0) as crasher:
        assert crasher.finished(10.0)
    assert sorted(rid for _, rid in crasher.killed) == sorted(serving)
    for (at, _), planned in zip(crasher.killed, (0.1, 0.15), strict=True):
        assert planned <= at < planned + 0.5  # the first two crash times; the third finds nothing
    for rid in serving:
        assert fleet.process(rid).wait(10.0) == -9
    assert fleet.process("standby-1").exit_code() is None
