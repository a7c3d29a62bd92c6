"""One replica's service curve as the load balancer sees it: a calibration sweep.

:func:`run_sweep` starts a one-replica fleet (the same ``warmgate serve`` flags and the same
HAProxy configuration as the fleet it calibrates for), waits for READY, and has
:mod:`warmgate.fleet.loadgen` send open-loop Poisson arrivals at a few rates through HAProxy
from its own process. Each rate runs for ``seconds``, with a pause between rates so one rate's
backlog does not spill into the next. :func:`warmgate.autoscaling.calibrate.fit_service` turns
the rows into a service-time model; the replica's own ``/metrics`` before and after say how
much of the latency was spent inside the replica.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from warmgate.autoscaling.calibrate import ServiceFit, fit_sweep_rows
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import ReplicaSpec, pick_port


def poisson_arrivals(
    rates: Sequence[float], seconds: float, gap_s: float, rng: random.Random
) -> list[tuple[float, float]]:
    """``(send time, rate)`` for Poisson arrivals at each rate in turn, ``gap_s`` apart."""
    arrivals: list[tuple[float, float]] = []
    begin = gap_s
    for rate in rates:
        at = begin + rng.expovariate(rate)
        while at < begin + seconds:
            arrivals.append((at, rate))
            at += rng.expovariate(rate)
        begin += seconds + gap_s
    return arrivals


@dataclass(frozen=True)
class Sweep:
    """What the sweep measured: loadgen rows ``[sent_at, latency_s, status]`` with the rate each
    was sent at, and the replica's ``/metrics`` text before and after."""

    rows: tuple[tuple[float, float, int], ...]
    rates: tuple[float, ...]
    metrics_before: str
    metrics_after: str

    def ok(self) -> list[tuple[float, float]]:
        """``(sent_at, latency)`` of the requests answered 200."""
        return [(at, latency) for at, latency, status in self.rows if status == 200]


def run_sweep(
    spec: ReplicaSpec,
    body: Path,
    work: Path,
    rates: Sequence[float],
    seconds: float,
    settings: HaproxySettings | None = None,
    seed: int = 0,
    ready_timeout_s: float = 300.0,
) -> Sweep:
    """Sweep ``rates`` (requests/s) for ``seconds`` each against one fresh replica behind HAProxy."""
    work.mkdir(parents=True, exist_ok=True)
    settings = settings or HaproxySettings(port=pick_port(), socket=work / "haproxy.sock")
    planned = poisson_arrivals(rates, seconds, gap_s=1.0, rng=random.Random(seed))
    arrivals_file, out_file = work / "arrivals.json", work / "rows.json"
    arrivals_file.write_text(json.dumps([at for at, _ in planned]))
    with Fleet(spec, settings, work, slots=1) as fleet:
        fleet.launch(Role.SERVING, time.monotonic())
        deadline = time.monotonic() + ready_timeout_s
        while not fleet.in_rotation():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the calibration replica was not in rotation after {ready_timeout_s:.0f} s"
                )
            time.sleep(0.1)
            fleet.refresh(time.monotonic())
        replica_url = f"http://127.0.0.1:{fleet.in_rotation()[0].port}/metrics"
        with httpx.Client(timeout=30) as client:
            before = client.get(replica_url).text
            command = [sys.executable, "-m", "warmgate.fleet.loadgen", fleet.url + "/invocations"]
            subprocess.run([*command, str(body), str(arrivals_file), str(out_file)], check=True)
            after = client.get(replica_url).text
    rows = tuple((float(a), float(lat), int(st)) for a, lat, st in json.loads(out_file.read_text()))
    return Sweep(rows, tuple(rate for _, rate in planned), before, after)


def fit_from_sweep(sweep: Sweep) -> ServiceFit:
    """The service-time model of the requests the sweep got 200 for."""
    return fit_sweep_rows(sweep.rows)
