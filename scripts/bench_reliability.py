"""Reliability figures for docs/benchmarks.md ("Reliability"): readiness after READY, and overload.

    python scripts/bench_reliability.py [stall] [failing] [overload] [--trials N] [--seconds S]

* stall    — two `warmgate serve` replicas of a switchable handler behind HAProxy
             (`option httpchk GET /ping`, inter 200 ms, fall 2, rise 2), steady open-loop load
             (40 req/s) from a separate process. One replica's inference is stalled for 3 s:
             time from the stall to its /ping 503, to HAProxy's DOWN, back to READY / UP after
             the release, and the client requests lost (non-200) across stall and recovery.
* failing  — the same rig; one replica's backend fails every call for 3 s: client requests
             lost (the in-flight ones before it went DEGRADED), time to DEGRADED and back.
* overload — one replica of a real ONNX model (64-row requests through a 24-layer MLP, built
             here). Its saturated throughput is measured with hey (closed loop, 16 connections),
             then an open-loop client offers 4x that rate for --seconds (60): peak RSS vs RSS
             at READY, the share of requests refused with 503 + Retry-After, other errors, and
             /ping p50/p99 from wrk -c1 running alongside.

Needs HAProxy, hey and wrk (Debian packages). Prints Markdown; --json FILE writes the raw figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import onnx_models  # noqa: E402
from tests.e2e.process import replica  # noqa: E402
from tests.e2e.reliability import rig, steady_load, wait_until  # noqa: E402

STALL_S = 3.0
RATE = 40.0


def machine() -> str:
    cores = len(os.sched_getaffinity(0))
    python, linux = platform.python_version(), platform.release()
    return f"{platform.machine()}, {cores} cores, Python {python}, Linux {linux}"


def stall_trial(tmp: Path, switch: str) -> dict[str, Any]:
    with rig(tmp) as r, steady_load(r.url, tmp, RATE) as outcomes:
        wait_until(lambda: sum(o.ok for o in outcomes()) >= 20, 30, "steady traffic")
        t0 = time.monotonic()
        (r.model_dirs[0] / switch).touch()
        t503 = wait_until(lambda: r.ping(0) == 503, 30, "/ping 503")
        tdown = wait_until(lambda: r.status(0).startswith("DOWN"), 30, "HAProxy DOWN")
        time.sleep(max(0.0, t0 + STALL_S - time.monotonic()))  # the stall's length, by design
        t1 = time.monotonic()
        (r.model_dirs[0] / switch).unlink()
        tready = wait_until(lambda: r.ping(0) == 200, 30, "/ping 200 again")
        tup = wait_until(lambda: r.status(0).startswith("UP"), 30, "HAProxy UP again")
        back = r.sessions(0)
        wait_until(lambda: r.sessions(0) > back, 30, "traffic on the replica again")
    done = outcomes()
    return {
        "to_503_s": t503 - t0,
        "to_down_s": tdown - t0,
        "release_to_ready_s": tready - t1,
        "release_to_up_s": tup - t1,
        "requests": len(done),
        "lost": sum(not o.ok for o in done),
        "lost_statuses": sorted({o.status for o in done if not o.ok}),
    }


def _npy(rows: int, width: int = 384) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((rows, width), np.float32))
    return buf.getvalue()


def _rss_kib(pid: int) -> dict[str, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _hey(url: str, body: Path, seconds: int, workers: int) -> str:
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-m", "POST", "-T", "application/x-npy"]
    return subprocess.run([*cmd, "-D", str(body), url], capture_output=True, text=True, check=True).stdout


def _hey_rps(output: str) -> float:
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if match is None:
        raise RuntimeError(f"hey printed no Requests/sec: {output[-500:]}")
    return float(match.group(1))


def _hey_statuses(output: str) -> dict[int, int]:
    return {int(code): int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)}


def _wrk_ping(url: str, seconds: int) -> subprocess.Popen[str]:
    cmd = ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url + "/ping"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk_latency(output: str) -> dict[str, float]:
    found = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {
        "p50_ms": _ms(found["50"]),
        "p99_ms": _ms(found["99"]),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


SATURATION_WORKERS = 16


def overload(tmp: Path, seconds: int, extra: Sequence[str] = ()) -> dict[str, Any]:
    """4x saturation: hey with 4x the saturating connections, each paced so that together they
    offer 4x the saturated throughput; admission allows 2x the saturating concurrency."""
    model_dir = tmp / "mlp"
    onnx_models.slow(model_dir / "model.onnx")
    body = tmp / "body.npy"
    body.write_bytes(_npy(64))
    args = ("--max-batch", "8", "--max-queue", str(2 * SATURATION_WORKERS), *extra)
    with replica(model_dir, tmp, *args) as server:
        server.wait_for("/ping", 200, timeout_s=300)
        pid = server.proc.pid
        url = server.url + "/invocations"
        capacity = _hey_rps(_hey(url, body, 8, SATURATION_WORKERS))
        rss_ready = _rss_kib(pid)["VmRSS"]
        rate = 4 * capacity
        workers = 4 * SATURATION_WORKERS
        pinger = _wrk_ping(server.url, seconds)
        samples: list[int] = []
        # A light sampler beside hey records each response's Retry-After (hey does not).
        sampler_args = ("--body-file", str(body), "--content-type", "application/x-npy")
        with steady_load(url, tmp, 5.0, *sampler_args, "--duration", str(seconds)) as sampled:
            loader = subprocess.Popen(
                _hey_cmd(url, body, seconds, workers, rate / workers),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            t0 = time.monotonic()
            while loader.poll() is None and time.monotonic() - t0 < seconds + 30:
                samples.append(_rss_kib(pid)["VmRSS"])
                time.sleep(1.0)  # RSS sampling interval
            hey_out, _ = loader.communicate(timeout=60)
        ping_out, _ = pinger.communicate(timeout=seconds + 30)
        peak = _rss_kib(pid)["VmHWM"]
    statuses = _hey_statuses(hey_out)
    refused = [o for o in sampled() if o.status == 503]
    third = max(1, len(samples) // 3)
    return {
        "capacity_rps": capacity,
        "offered_rps": rate,
        "achieved_rps": _hey_rps(hey_out),
        "seconds": seconds,
        "statuses": statuses,
        "sampled_503": len(refused),
        "sampled_503_with_retry_after": sum(o.retry_after is not None for o in refused),
        "rss_ready_mib": rss_ready / 1024,
        "rss_peak_mib": peak / 1024,
        "rss_first_third_max_mib": max(samples[:third]) / 1024,
        "rss_last_third_max_mib": max(samples[-third:]) / 1024,
        "ping": _wrk_latency(ping_out),
    }


def _hey_cmd(url: str, body: Path, seconds: int, workers: int, qps: float) -> list[str]:
    cmd = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-m", "POST", "-T", "application/x-npy"]
    # Niced: the load generator shares the server's cores here; it should not starve the server.
    return ["nice", "-n", "19", *cmd, "-D", str(body), "-q", f"{qps:.2f}", url]


def print_trials(part: str, trials: list[dict[str, Any]]) -> None:
    print(f"### {part}: {len(trials)} trials, {RATE:g} req/s via HAProxy, switch held {STALL_S:g} s\n")
    print("| trial | → /ping 503 | → HAProxy DOWN | release → READY | release → UP | requests | lost |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for n, t in enumerate(trials, 1):
        times = [t[k] for k in ("to_503_s", "to_down_s", "release_to_ready_s", "release_to_up_s")]
        cells = [str(n), *(f"{v:.2f} s" for v in times), str(t["requests"])]
        cells.append(f"{t['lost']} {t['lost_statuses'] or ''}".strip())
        print("| " + " | ".join(cells) + " |")
    med = statistics.median(t["to_down_s"] - t["to_503_s"] for t in trials)
    print(f"\nmedian /ping 503 → HAProxy DOWN: {med:.2f} s\n")


def print_overload(o: dict[str, Any]) -> None:
    st, p = o["statuses"], o["ping"]
    print(f"### overload: 4x saturation for {o['seconds']} s\n")
    print(f"- saturated (hey -c{SATURATION_WORKERS}): {o['capacity_rps']:.1f} req/s")
    print(f"- offered {o['offered_rps']:.1f} req/s, hey achieved {o['achieved_rps']:.1f} req/s")
    share = st.get(503, 0) / max(1, sum(st.values()))
    print(f"- statuses {st}: {share:.0%} refused with 503")
    with_header = o["sampled_503_with_retry_after"]
    print(f"- sampler beside hey: {o['sampled_503']} refused, {with_header} with Retry-After")
    print(f"- RSS at READY {o['rss_ready_mib']:.0f} MiB, peak (VmHWM) {o['rss_peak_mib']:.0f} MiB")
    first, last = o["rss_first_third_max_mib"], o["rss_last_third_max_mib"]
    print(f"- RSS max in the first third {first:.0f} MiB, in the last third {last:.0f} MiB")
    print(f"- /ping (wrk -c1 alongside): p50 {p['p50_ms']:.2f} ms, p99 {p['p99_ms']:.2f} ms")
    print(f"- /ping non-2xx: {p['non_2xx']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("parts", nargs="*", default=["stall", "failing", "overload"])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--json", default="")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `warmgate serve` argument for the overload replica (repeat it)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"machine": machine()}
    print(f"Machine: {results['machine']}\n")
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("stall", "failing"):
            if part not in args.parts:
                continue
            trials = []
            for n in range(args.trials):
                trial_dir = Path(tmp) / f"{part}{n}"
                trial_dir.mkdir()
                trials.append(stall_trial(trial_dir, "stall" if part == "stall" else "fail"))
            results[part] = trials
            print_trials(part, trials)
        if "overload" in args.parts:
            trial_dir = Path(tmp) / "overload"
            trial_dir.mkdir()
            results["overload"] = overload(trial_dir, args.seconds, args.server_arg)
            print_overload(results["overload"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
