"""Replay a trace against a real fleet and through the simulator, and print both side by side.

``python scripts/fleet_replay.py --model-dir DIR --body FILE [--trace spike | --csv FILE]``:

1. the trace is compressed in time (``--time-scale``), thinned (``--keep``) and cut
   (``--duration-s``) to fit this machine;
2. a fleet (HAProxy + ``warmgate serve`` processes, the policy and a warm pool) starts and
   waits for its floor and its standbys; one request to each floor replica ends its keep-warm;
3. the calibration sweep (:mod:`warmgate.fleet.sweep`) sends open-loop requests at a few rates
   to the READY standby through an HAProxy of its own, while the fleet sits at its floor; the
   replica model is fitted to it (:func:`warmgate.autoscaling.calibrate.fit_service`), with
   load and warmup times from the standby's ``/metrics``; with ``--host-cores`` (every
   replica on this one machine) a last segment launches a spare replica, and its start time
   and the latencies it caused meanwhile become the model's cold start and start slowdown;
4. :mod:`warmgate.fleet.loadgen` replays the arrivals from its own process, open loop, while
   a sampler counts replicas every tick (replica-seconds, time below the floor) and, at the
   trace's crash times, a :class:`Crasher` SIGKILLs a hot replica;
5. the same arrivals and the calibrated model go through the simulator with the same policy
   and pool, and a router that refuses at once what meets no hot replica (HAProxy with no
   server UP); each sweep rate is also simulated on one replica beside its measured p50/p99.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx

from warmgate.autoscaling.calibrate import (
    ServiceFit,
    ShiftedLogNormal,
    replica_from_metrics,
    served_seconds,
)
from warmgate.autoscaling.model import ReplicaPhase, ScalingConfig, TargetMetric
from warmgate.autoscaling.pool import MemberState, WarmPool
from warmgate.autoscaling.scenario import ReplicaModel, SimConfig, SlimStandbys
from warmgate.autoscaling.simulator import simulate
from warmgate.autoscaling.traces import Trace, TraceKind, load_csv, synthetic
from warmgate.fleet.cli import add_standby_options, standby_pool_config
from warmgate.fleet.control import Background, ControlLoop
from warmgate.fleet.cpu_quota import open_quota
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import HOST, ReplicaSpec, pick_port
from warmgate.fleet.sweep import Sweep, fit_from_sweep, run_sweep, start_fit


@dataclass(frozen=True)
class Figures:
    requests: int
    sla_misses: int
    no_ready: int
    below_floor_s: float
    replica_s: float
    p99_s: float | None

    def row(self, name: str) -> str:
        p99 = f"{self.p99_s:.3f}" if self.p99_s is not None else "-"
        miss = 100 * self.sla_misses / self.requests if self.requests else 0.0
        return (
            f"| {name} | {self.requests} | {self.sla_misses} | {miss:.2f} | {self.no_ready} | "
            f"{self.below_floor_s:.1f} | {self.replica_s:.0f} | {p99} |"
        )


# Spares the sweep starts at once, round after round. A scale-out launches a replica and the
# standby that refills the pool together, and those starts set the replay's slowest requests
# (run 8: 18 of its 29 slowest in the second of one). But two starts beside one replica serving
# the sweep's top rate slow it far more (p50 33 ms, against 7 ms for one start) than a scale-out
# slows three or four replicas sharing the load: with 2 the simulator's p99 came out 2.5-3 x the
# fleet's (runs 10-11, docs/autoscaling.md), with 1 a few ms short. One, the closer.
SPARES_TOGETHER = 1

# How long the load generator's process has to start before its first arrival (offset 0): the
# crashes are lined up with that zero.
LOADGEN_START_S = 2.0

HEADER = (
    "| run | requests | SLA miss | miss % | no ready | below floor s | replica-s | p99 s |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|"
)


def shrink(trace: Trace, time_scale: float, keep: float, duration_s: float, seed: int) -> Trace:
    """``trace`` compressed ``time_scale`` x in time, thinned to ``keep`` of its arrivals and cut
    at ``duration_s`` (or where the compressed trace ends, if sooner); its crashes are
    compressed and cut alike (all of them kept)."""
    duration_s = min(duration_s, trace.duration_s * time_scale)
    rng = random.Random(seed)
    arrivals = tuple(
        a * time_scale for a in trace.arrivals if a * time_scale < duration_s and rng.random() < keep
    )
    crashes = tuple(c * time_scale for c in trace.crashes if c * time_scale < duration_s)
    name = f"{trace.name} x{time_scale:g} keep {keep:g}"
    return Trace(name, duration_s, arrivals, (1.0,) * len(arrivals), crashes)


class _BesideTheLoad:
    """A thread that runs ``_run`` while the load generator does: started on entering, asked to
    stop (``_stop``) and joined on leaving."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _run(self) -> None:
        raise NotImplementedError


class Crasher(_BesideTheLoad):
    """At each of ``times`` (seconds after ``start`` on the monotonic clock, the load
    generator's zero) SIGKILLs one hot replica, drawn as the simulator draws its crash: at
    random, by id, among those HAProxy routes to whose process still runs (the simulator's hot
    replicas: a claimed standby is not hot before the load balancer admits it). ``killed``
    lists ``(offset_s, replica_id)``."""

    def __init__(self, fleet: Fleet, times: Sequence[float], start: float, seed: int) -> None:
        super().__init__()
        self.fleet, self.times, self.start = fleet, times, start
        self.rng = random.Random(seed)
        self.killed: list[tuple[float, str]] = []

    def finished(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the last crash time to pass; whether it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        for at in sorted(self.times):
            if self._stop.wait(max(0.0, self.start + at - time.monotonic())):
                return
            dead = {rid for _, rid in self.killed}  # a SIGKILLed process can take a while to exit
            hot = sorted(
                r.replica_id
                for r in self.fleet.in_rotation()
                if r.role is Role.SERVING
                and r.replica_id not in dead
                and self.fleet.process(r.replica_id).exit_code() is None
            )
            if hot:
                victim = self.rng.choice(hot)
                self.fleet.process(victim).kill()
                self.killed.append((time.monotonic() - self.start, victim))


class Sampler(_BesideTheLoad):
    """Counts serving replicas by phase every ``tick_s`` on a thread, over the trace's own window
    ``[start, end]`` (monotonic clock) only, as the simulator counts ``[0, duration]``."""

    def __init__(self, fleet: Fleet, floor: int, tick_s: float, start: float, end: float) -> None:
        super().__init__()
        self.fleet, self.floor, self.tick_s = fleet, floor, tick_s
        self.start, self.end = start, end
        self.replica_s = self.below_floor_s = 0.0

    def wait_for_end(self) -> None:
        """Block until the window is over (the load generator may finish before the trace)."""
        self._thread.join(max(0.0, self.end - time.monotonic()) + 5 * self.tick_s)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.tick_s) and last < self.end:
            now = time.monotonic()
            span = max(0.0, min(now, self.end) - max(last, self.start))
            last = now
            replicas = self.fleet.replicas()
            live = [r for r in replicas if r.phase is not ReplicaPhase.FAILED]
            ready = sum(1 for r in live if r.role is Role.SERVING and r.phase is ReplicaPhase.READY)
            self.replica_s += span * len(live)
            if ready < self.floor:
                self.below_floor_s += span


def _end_keep_warm(fleet: Fleet, body: bytes) -> None:
    """One request straight to each replica in rotation: it ends the keep-warm the replica has
    run since READY (warmgate/server/keepwarm.py), which would otherwise take a core from the
    calibration sweep's replica on this shared host for its first 30 s."""
    for replica in fleet.in_rotation():
        url = f"http://{HOST}:{replica.port}/invocations"
        httpx.post(
            url, content=body, headers={"Content-Type": "application/x-npy"}, timeout=30
        ).raise_for_status()


def _quantiles(latencies: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return at(0.5), at(0.99)


def sweep_check(sweep: Sweep, model: ReplicaModel, seed: int) -> list[str]:
    """Each sweep rate's measured p50/p99 beside the fitted model's, simulated on one replica
    with the same arrivals: how well the fit reproduces what it was fitted to."""
    one = ScalingConfig(min_hot=1, max_replicas=1)
    lines = [
        "| sweep rate /s | requests | real p50 ms | sim p50 ms | real p99 ms | sim p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in sorted(set(sweep.rates)):
        rows = [
            r
            for r, at_rate in zip(sweep.rows, sweep.rates, strict=True)
            if at_rate == rate and r[2] == 200 and not sweep.starting(r[0])
        ]
        if not rows:
            continue
        begin = rows[0][0]
        arrivals = tuple(at - begin for at, _, _ in rows)
        trace = Trace(f"sweep {rate:g}/s", arrivals[-1] + 5.0, arrivals, (1.0,) * len(arrivals))
        report = simulate(trace, SimConfig(scaling=one, replica=model, floor=1), random.Random(seed))
        real50, real99 = _quantiles([lat for _, lat, _ in rows])
        sim50, sim99 = report.p50_latency_s or 0.0, report.p99_latency_s or 0.0
        lines.append(
            f"| {rate:g} | {len(rows)} | {1e3 * real50:.1f} | {1e3 * sim50:.1f} | "
            f"{1e3 * real99:.1f} | {1e3 * sim99:.1f} |"
        )
    return lines


def start_spread(times: Sequence[float]) -> tuple[float, float]:
    """Start times as the simulator's cold start: their median, and the spread of their logs
    (the sigma of a log-normal of that median; 0 from fewer than three starts)."""
    logs = [math.log(t) for t in times]
    sigma = statistics.stdev(logs) if len(logs) >= 3 else 0.0
    return statistics.median(times), sigma


def print_start(sweep: Sweep, starting: ShiftedLogNormal | None) -> None:
    if not sweep.starts:
        return
    times = sweep.start_times
    median, sigma = start_spread(times)
    during = [lat for at, lat, status in sweep.rows if status == 200 and sweep.starting(at)]
    line = (
        f"# {len(times)} spare replica start(s) during the sweep: READY {min(times):.2f}–{max(times):.2f} s "
        f"after launch, median {median:.2f} s, log sigma {sigma:.2f}"
    )
    if during and starting is not None:
        real50, real99 = _quantiles(during)
        line += (
            f"; the {len(during)} requests sent meanwhile: p50 {1e3 * real50:.1f} ms, p99 "
            f"{1e3 * real99:.1f} ms; fit {1e3 * starting.shift_s:.2f} ms fixed + "
            f"{1e3 * starting.median_s:.2f} ms x LogNormal(sigma {starting.sigma:.2f}) "
            f"(p50 {1e3 * starting.quantile(0.5):.1f} ms, p99 {1e3 * starting.quantile(0.99):.1f} ms)"
        )
    else:
        line += f"; {len(during)} requests met them: too few to fit, no start slowdown modelled"
    print(line)


def print_calibration(sweep: Sweep, fit: ServiceFit, model: ReplicaModel, seed: int) -> None:
    ok = sweep.ok()
    served_before, inside_before = served_seconds(sweep.metrics_before)
    served_after, inside_after = served_seconds(sweep.metrics_after)
    served = served_after - served_before
    inside = (inside_after - inside_before) / served if served else 0.0
    client = sum(lat for _, lat in ok) / len(ok)
    rates = ", ".join(f"{r:g}" for r in sorted(set(sweep.rates)))
    print(
        f"# calibration sweep: {len(sweep.rows)} requests at {rates} requests/s to the fleet's READY "
        "standby behind an HAProxy of its own, the fleet at its floor"
    )
    print(
        f"#   mean latency {1e3 * client:.2f} ms at the load generator, {1e3 * inside:.2f} ms inside the "
        f"replica (its own histogram), {1e3 * (client - inside):.2f} ms HTTP client + HAProxy + connection"
    )
    print(
        f"#   fit: {1e3 * fit.overhead_s:.2f} ms fixed + ({1e3 * fit.lone_s:.2f} ms + "
        f"{1e3 * fit.per_request_s:.2f} ms per other request outstanding) x LogNormal(sigma {fit.sigma:.2f})"
    )
    print(f"# replica model: {model}")
    for line in sweep_check(sweep, dataclasses.replace(model, host_cores=None), seed):
        print(line)


def _until(predicate: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)


def run(args: argparse.Namespace) -> int:
    base = (
        load_csv(args.csv, random.Random(args.seed))
        if args.csv
        else synthetic(TraceKind(args.trace), random.Random(args.seed))
    )
    trace = shrink(base, args.time_scale, args.keep, args.duration_s, args.seed)
    scaling = ScalingConfig(
        min_hot=2,
        max_replicas=args.max_replicas,
        metric=TargetMetric.INVOCATIONS,
        target_per_replica=args.target,
        metric_window_s=args.metric_window_s,
        panic_window_s=args.panic_window_s,
        scale_in_window_s=args.scale_in_window_s,
    )
    pool_config = standby_pool_config(args, args.pool)
    work = Path(tempfile.mkdtemp(prefix="wg-replay-"))
    spec = ReplicaSpec(args.model_dir, tuple(args.replica_arg), drain_delay_s=0.5)
    settings = HaproxySettings(port=pick_port(), socket=work / "haproxy.sock")
    quota = open_quota(f"warmgate-replay-{os.getpid()}", args.slim_standby_cores)
    slots = 2 * args.max_replicas + args.pool
    with Fleet(spec, settings, work, slots=slots, slim=quota) as fleet:
        pool = WarmPool(pool_config, id_prefix="standby")
        loop = ControlLoop(fleet, scaling, pool, tick_s=args.tick_s)
        for _ in range(2):
            fleet.launch(Role.SERVING, loop.clock())
        background = Background(loop).start()
        try:
            _until(lambda: len(fleet.in_rotation()) >= 2, "two replicas in rotation", 300)
            _until(lambda: pool.count(MemberState.READY) >= args.pool, "the standbys", 300)
            standby = next(r for r in fleet.replicas() if r.role is Role.STANDBY)
            if quota is not None:  # the sweep measures a replica at full speed, then it waits slim
                _until(lambda: quota.limit_of(standby.replica_id) is not None, "the standby slim", 30)
                quota.lift(standby.replica_id)
            _end_keep_warm(fleet, args.body.read_bytes())
            calibration = HaproxySettings(port=pick_port(), socket=work / "sweep.sock")
            sweep = run_sweep(
                standby.port,
                args.body,
                work / "sweep",
                args.sweep_rates,
                args.sweep_s,
                calibration,
                args.seed,
                spare=spec if args.host_cores is not None else None,
                spares_together=SPARES_TOGETHER,
            )
            if quota is not None:
                quota.hold(standby.replica_id, standby.pid)
            no_ready_before = fleet.backend().no_server_503
            arrivals_file, out_file = work / "arrivals.json", work / "rows.json"
            arrivals_file.write_text(json.dumps(list(trace.arrivals)))
            command = [sys.executable, "-m", "warmgate.fleet.loadgen", fleet.url + "/invocations"]
            start = time.monotonic() + LOADGEN_START_S
            with (
                Sampler(fleet, 2, args.tick_s, start, start + trace.duration_s) as sampler,
                Crasher(fleet, trace.crashes, start, args.seed) as crasher,
            ):
                subprocess.run(
                    [*command, str(args.body), str(arrivals_file), str(out_file), "--start-at", str(start)],
                    check=True,
                )
                sampler.wait_for_end()
            rows = json.loads(out_file.read_text())
            no_ready = fleet.backend().no_server_503 - no_ready_before
        finally:
            background.stop()
    fit = fit_from_sweep(sweep)
    base_model = replica_from_metrics(
        sweep.metrics_after,
        ReplicaModel(
            queue_depth=args.queue_depth,
            provision_s=args.provision_s,
            claim_s=args.claim_s,
            admit_s=args.claim_s,
        ),
    )
    model = dataclasses.replace(fit.replica(base_model, args.concurrency), host_cores=args.host_cores)
    if sweep.starts:  # starts on this host, as measured: how long they took, and their spread
        median, sigma = start_spread(sweep.start_times)
        provision_s = max(0.0, median - model.load_s - model.warmup_s)
        model = dataclasses.replace(model, provision_s=provision_s, cold_start_sigma=sigma)
    starting = start_fit(sweep)
    if starting is not None:  # what a start did to the replica serving
        model = dataclasses.replace(
            model,
            starting_overhead_s=starting.shift_s,
            starting_median_s=starting.median_s,
            starting_sigma=starting.sigma,
        )
    latencies = sorted(r[1] for r in rows if r[2] == 200)
    own = fit.median_lone_s  # a request's own service time: a lone one's median, end to end
    misses = sum(1 for r in rows if r[2] != 200 or r[1] - own > args.budget_s)
    real = Figures(
        len(rows),
        misses,
        no_ready,
        sampler.below_floor_s,
        sampler.replica_s,
        latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
    )
    sim_config = SimConfig(
        scaling=scaling,
        replica=model,
        pool=pool_config,
        tick_s=args.tick_s,
        latency_budget_s=args.budget_s,
        router_timeout_s=0.0,  # HAProxy with no server UP answers 503 at once; it holds nothing
        # a cgroup write lifts the quota: the claim's time is HAProxy's check (claim_s)
        slim=SlimStandbys(resize_s=0.0) if quota is not None else None,
    )
    report = simulate(trace, sim_config, random.Random(args.seed))
    sim = Figures(
        report.requests,
        report.sla_misses,
        report.met_no_ready,
        report.below_floor_s,
        report.replica_hours * 3600.0,
        report.p99_latency_s,
    )
    print_calibration(sweep, fit, model, args.seed)
    print_start(sweep, starting)
    print(f"# trace {trace.name}: {len(trace.arrivals)} requests over {trace.duration_s:.0f} s")
    if trace.crashes:
        planned = ", ".join(f"{c:.2f}" for c in trace.crashes)
        done = ", ".join(f"{rid} at {at:.2f}" for at, rid in crasher.killed) or "none (nothing hot)"
        print(f"# crashes planned at {planned} s; killed (SIGKILL): {done} s")
    print(f"# rows, arrivals and logs (the sweep's under sweep/) kept in {work}")
    print(HEADER)
    print(real.row("real fleet"))
    print(sim.row("simulator"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="scripts/fleet_replay.py", description=__doc__)
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--body", type=Path, required=True, help="one request body (application/x-npy)")
    p.add_argument("--trace", choices=[k.value for k in TraceKind], default="spike")
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--time-scale", type=float, default=0.05, help="multiply arrival times by this")
    p.add_argument("--keep", type=float, default=1.0, help="fraction of arrivals kept")
    p.add_argument("--duration-s", type=float, default=120.0, help="seconds of compressed trace")
    p.add_argument("--pool", type=int, default=1)
    add_standby_options(p)
    p.add_argument("--max-replicas", type=int, default=4)
    p.add_argument("--target", type=float, default=20.0, help="requests/s per replica to aim for")
    p.add_argument("--metric-window-s", type=float, default=5.0)
    p.add_argument("--panic-window-s", type=float, default=1.0)
    p.add_argument("--scale-in-window-s", type=float, default=20.0)
    p.add_argument("--tick-s", type=float, default=0.25)
    p.add_argument("--budget-s", type=float, default=0.5, help="waiting-time budget of the SLA")
    p.add_argument(
        "--concurrency", type=int, default=8, help="requests one replica serves together (a batch)"
    )
    p.add_argument(
        "--sweep-rates",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[5.0, 10.0, 20.0, 40.0],
        help="open-loop rates (requests/s) of the calibration sweep, comma-separated",
    )
    p.add_argument("--sweep-s", type=float, default=15.0, help="seconds of the sweep at each rate")
    p.add_argument("--queue-depth", type=int, default=64)
    p.add_argument(
        "--provision-s",
        type=float,
        default=0.5,
        help="process start before loading (with --host-cores: measured by the sweep's spare start)",
    )
    p.add_argument(
        "--claim-s",
        type=float,
        default=0.1,
        help="READY -> routed, for a claimed standby and a cold start alike: the mean wait for "
        "HAProxy's next health check (half its 200 ms interval)",
    )
    p.add_argument("--host-cores", type=int, default=None, help="cores every replica shares (simulator)")
    p.add_argument("--replica-arg", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    return run(p.parse_args(argv))
