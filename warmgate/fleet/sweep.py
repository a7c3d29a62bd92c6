"""One replica's service curve as the load balancer sees it: a calibration sweep.

:func:`run_sweep` puts a running replica behind an HAProxy of its own (the fleet's rendered
configuration, one server line) and has :mod:`warmgate.fleet.loadgen` send open-loop Poisson
arrivals at a few rates through it from its own process. ``scripts/fleet_replay.py`` sweeps the
fleet's READY standby while the fleet sits at its floor with its control loop running: the
replica, the host and the probes are the ones the replay will meet, and the policy does not see
the sweep (it counts the serving replicas' requests only). Each rate runs for ``seconds``, with
a pause between rates so one rate's backlog does not spill into the next.
:func:`warmgate.autoscaling.calibrate.fit_sweep_rows` turns the rows into a service-time model;
the replica's own ``/metrics`` before and after say how much of the latency was inside it.
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
from warmgate.fleet.haproxy import HaproxyProcess, find_haproxy
from warmgate.fleet.haproxy_config import AdminState, HaproxySettings, ServerLine, render_config
from warmgate.fleet.replica import HOST


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
    port: int,
    body: Path,
    work: Path,
    rates: Sequence[float],
    seconds: float,
    settings: HaproxySettings,
    seed: int = 0,
    up_timeout_s: float = 30.0,
) -> Sweep:
    """Sweep ``rates`` (requests/s) for ``seconds`` each through an HAProxy (``settings``) whose
    one server is the READY replica listening on ``port``."""
    work.mkdir(parents=True, exist_ok=True)
    planned = poisson_arrivals(rates, seconds, gap_s=1.0, rng=random.Random(seed))
    arrivals_file, out_file = work / "arrivals.json", work / "rows.json"
    arrivals_file.write_text(json.dumps([at for at, _ in planned]))
    config = work / "haproxy.cfg"
    config.write_text(render_config(settings, [ServerLine("s1", HOST, port, AdminState.READY)]))
    haproxy = HaproxyProcess(find_haproxy(), config, settings.socket, work / "haproxy.log")
    api = haproxy.start()
    try:
        deadline = time.monotonic() + up_timeout_s
        while not api.show_stat().server("s1").in_rotation:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"HAProxy did not see the replica on port {port} UP in {up_timeout_s:.0f} s"
                )
            time.sleep(0.05)
        url = f"http://{settings.bind}:{settings.port}/invocations"
        with httpx.Client(timeout=30) as client:
            before = client.get(f"http://{HOST}:{port}/metrics").text
            command = [sys.executable, "-m", "warmgate.fleet.loadgen", url]
            subprocess.run([*command, str(body), str(arrivals_file), str(out_file)], check=True)
            after = client.get(f"http://{HOST}:{port}/metrics").text
    finally:
        haproxy.stop()
    rows = tuple((float(a), float(lat), int(st)) for a, lat, st in json.loads(out_file.read_text()))
    return Sweep(rows, tuple(rate for _, rate in planned), before, after)


def fit_from_sweep(sweep: Sweep) -> ServiceFit:
    """The service-time model of the requests the sweep got 200 for."""
    return fit_sweep_rows(sweep.rows)
