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

from warmgate.autoscaling.calibrate import ServiceFit, ShiftedLogNormal, fit_shifted_lognormal, fit_sweep_rows
from warmgate.fleet.haproxy import HaproxyProcess, find_haproxy
from warmgate.fleet.haproxy_config import AdminState, HaproxySettings, ServerLine, render_config
from warmgate.fleet.replica import HOST, ReplicaProcess, ReplicaSpec, pick_port

MIN_START = 30  # requests met during the spare's start before its latency is fitted


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
    starts: tuple[tuple[float, float], ...] = ()  # (launched, READY) of each spare start, in offsets

    def ok(self) -> list[tuple[float, float]]:
        """``(sent_at, latency)`` of the requests answered 200."""
        return [(at, latency) for at, latency, status in self.rows if status == 200]

    def starting(self, at: float) -> bool:
        """Whether a request sent at offset ``at`` met a spare replica starting."""
        return any(launched <= at < ready for launched, ready in self.starts)

    @property
    def start_times(self) -> tuple[float, ...]:
        """How long each spare start took from launch to READY."""
        return tuple(ready - launched for launched, ready in self.starts)


def _start_spares(
    spec: ReplicaSpec, work: Path, origin: float, at: float, until: float, timeout_s: float, together: int
) -> tuple[tuple[float, float], ...]:
    """From offset ``at`` (``origin`` monotonic) to ``until``, start replicas of ``spec``
    ``together`` at a time, round after round: launch, wait for every ``/ping`` 200, stop them,
    launch the next round. Each replica's (launch, READY) offsets; at least one round."""
    time.sleep(max(0.0, origin + at - time.monotonic()))
    starts: list[tuple[float, float]] = []
    while not starts or time.monotonic() < origin + until:
        launched = time.monotonic()
        names = [f"spare-{len(starts) + n + 1}" for n in range(together)]
        spares = [ReplicaProcess(name, spec, pick_port(), work / "logs") for name in names]
        try:
            ready: dict[int, float] = {}
            with httpx.Client(timeout=1.0) as client:
                while len(ready) < together:
                    for n, spare in enumerate(spares):
                        try:
                            if n not in ready and client.get(spare.url + "/ping").status_code == 200:
                                ready[n] = time.monotonic()
                        except httpx.HTTPError:
                            pass  # not listening yet
                    if time.monotonic() > launched + timeout_s:
                        raise TimeoutError(f"a spare replica was not READY after {timeout_s:.0f} s")
                    time.sleep(0.02)
            starts += [(launched - origin, ready[n] - origin) for n in range(together)]
        finally:
            for spare in spares:
                spare.terminate()
            for spare in spares:
                if spare.wait(10.0) is None:
                    spare.kill()
    return tuple(starts)


def run_sweep(
    port: int,
    body: Path,
    work: Path,
    rates: Sequence[float],
    seconds: float,
    settings: HaproxySettings,
    seed: int = 0,
    up_timeout_s: float = 30.0,
    spare: ReplicaSpec | None = None,
    spares_together: int = 1,
) -> Sweep:
    """Sweep ``rates`` (requests/s) for ``seconds`` each through an HAProxy (``settings``) whose
    one server is the READY replica listening on ``port``. With ``spare``, one more segment at
    the highest rate starts replicas of ``spare``, ``spares_together`` at a time, round after
    round from one second in (on the same host, outside HAProxy), each round stopped once READY:
    their start times are a distribution, and the rows sent meanwhile show what starts cost the
    replicas already serving."""
    work.mkdir(parents=True, exist_ok=True)
    segments = [*rates, max(rates)] if spare is not None else list(rates)
    planned = poisson_arrivals(segments, seconds, gap_s=1.0, rng=random.Random(seed))
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
        starts: tuple[tuple[float, float], ...] = ()
        with httpx.Client(timeout=30) as client:
            before = client.get(f"http://{HOST}:{port}/metrics").text
            origin = time.monotonic() + 2.0  # the load generator's offset 0, once it has imported
            command = [sys.executable, "-m", "warmgate.fleet.loadgen", url, "--start-at", repr(origin)]
            loadgen = subprocess.Popen([*command, str(body), str(arrivals_file), str(out_file)])
            try:
                if spare is not None:
                    launch_at = 1.0 + len(rates) * (seconds + 1.0) + 1.0  # 1 s into the last segment
                    until = launch_at - 1.0 + seconds - 1.0  # the last start begins before its final second
                    timeout_s = max(60.0, seconds)
                    starts = _start_spares(spare, work, origin, launch_at, until, timeout_s, spares_together)
            finally:
                if loadgen.wait() != 0:
                    raise subprocess.CalledProcessError(loadgen.returncode, command)
            after = client.get(f"http://{HOST}:{port}/metrics").text
    finally:
        haproxy.stop()
    rows = tuple((float(a), float(lat), int(st)) for a, lat, st in json.loads(out_file.read_text()))
    return Sweep(rows, tuple(rate for _, rate in planned), before, after, starts)


def fit_from_sweep(sweep: Sweep) -> ServiceFit:
    """The service-time model of the requests the sweep got 200 for, outside a start."""
    return fit_sweep_rows([row for row in sweep.rows if not sweep.starting(row[0])])


def start_fit(sweep: Sweep) -> ShiftedLogNormal | None:
    """The latency of the requests sent while a spare replica started (None without one, or
    with fewer than ``MIN_START`` of them)."""
    during = [latency for at, latency, status in sweep.rows if status == 200 and sweep.starting(at)]
    return fit_shifted_lognormal(during, minimum=MIN_START) if len(during) >= MIN_START else None
