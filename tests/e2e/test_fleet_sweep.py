"""The calibration sweep: open-loop requests from the load generator's own process, through an
HAProxy of the sweep's own, to one running replica; and the Poisson schedule it sends."""

from __future__ import annotations

import io
import itertools
import random
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import StartFleet
from tests.e2e.haproxy import requires_haproxy
from tests.e2e.process import free_port
from warmgate.autoscaling.calibrate import served_seconds
from warmgate.fleet.fleet import Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.sweep import fit_from_sweep, poisson_arrivals, run_sweep


def test_poisson_arrivals_run_each_rate_in_turn_at_that_rate() -> None:
    planned = poisson_arrivals([10.0, 40.0], seconds=100.0, gap_s=2.0, rng=random.Random(0))
    times = [at for at, _ in planned]
    assert times == sorted(times)
    slow = [at for at, rate in planned if rate == 10.0]
    fast = [at for at, rate in planned if rate == 40.0]
    assert slow[0] >= 2.0 and slow[-1] < 102.0  # the first rate, after the gap
    assert fast[0] >= 104.0 and fast[-1] < 204.0  # the second, after another gap
    assert len(slow) == pytest.approx(1000, rel=0.1)  # 10/s for 100 s; Poisson sd ~ 32
    assert len(fast) == pytest.approx(4000, rel=0.05)


@requires_haproxy
def test_the_sweep_reaches_one_replica_through_haproxy_and_fits(
    linear_dir: Path, short_dir: Path, start_fleet: StartFleet
) -> None:
    body = short_dir / "body.npy"
    buf = io.BytesIO()
    np.save(buf, np.ones((1, 4), np.float32))
    body.write_bytes(buf.getvalue())
    fleet = start_fleet(ReplicaSpec(linear_dir, drain_delay_s=0.2))
    fleet.launch(Role.SERVING, time.monotonic())
    deadline = time.monotonic() + 60
    while not fleet.in_rotation():
        assert time.monotonic() < deadline, "the replica never went READY"
        time.sleep(0.1)
    port = fleet.in_rotation()[0].port
    settings = HaproxySettings(port=free_port(), socket=short_dir / "sweep.sock")
    spare = ReplicaSpec(linear_dir, drain_delay_s=0.0)
    work = short_dir / "sweep"
    sweep = run_sweep(port, body, work, [60.0], 3.0, settings, spare=spare, spares_together=2)
    assert len(sweep.rows) >= 240  # 60/s for 3 s, then 3 s more with the spares starting, open loop
    # spares were started two at a time from 1 s into the second segment (which begins at
    # 1 + 3 + 1 s), the last round before its final second; a round went READY before the next
    assert len(sweep.starts) % 2 == 0 and sweep.starts[0][0] == pytest.approx(6.0, abs=0.5)
    rounds = [sweep.starts[i : i + 2] for i in range(0, len(sweep.starts), 2)]
    assert all(a[0] == b[0] for a, b in rounds)  # launched together
    assert all(0 < t < 60 for t in sweep.start_times)
    for this, after in itertools.pairwise(rounds):
        assert max(ready for _, ready in this) <= after[0][0]
    assert len(rounds) == 1 or rounds[-1][0][0] < 7.5
    assert any(sweep.starting(at) for at, _, _ in sweep.rows)
    assert {status for _, _, status in sweep.rows} == {200}
    # every request went through the sweep's HAProxy to that replica: its own counter moved by as many
    before, _ = served_seconds(sweep.metrics_before)
    after, _ = served_seconds(sweep.metrics_after)
    assert after - before == len(sweep.rows)
    fit = fit_from_sweep(sweep)
    assert fit.samples == sum(1 for at, _, _ in sweep.rows if not sweep.starting(at))  # a start fits apart
    assert 0 < fit.median_lone_s < max(latency for _, latency, _ in sweep.rows)
