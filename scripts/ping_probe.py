"""Where /ping's tail comes from under load: its latency distribution beside a saturating load,
for several `warmgate serve` configurations in turn, and a scheduler check.

    python scripts/ping_probe.py --config="--instances 1" --config="--instances 2" --rounds 2
    python scripts/ping_probe.py --config="--instances 2" --prober-nice -10   # a prober that
        # the niced inference threads cannot delay (run as root): is the tail the prober's own?
    python scripts/ping_probe.py --config="--instances 2" --load-nice 10   # the load generator
        # niced: is the tail the CPU the load generator takes on the same cores?
    python scripts/ping_probe.py --wake            # a nice-0 thread's wake-up beside two busy
        # nice-19 processes (and SCHED_IDLE ones): is it the scheduler?

Per configuration and round: requests/s of the load (hey, 32 clients by default) and /ping
p50/p90/p99/p99.5/max (hey, 1 client at 100/s, 900 pings in 9 s), configurations alternated
within each round. Needs hey (Debian package).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warmgate.bench import hey  # noqa: E402
from warmgate.bench.cli import SENTENCE, _model_dir  # noqa: E402
from warmgate.bench.served import serve  # noqa: E402

PING_RATE = 100.0
_BUSY = "while True: pass"


def quantiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    n = len(ordered)
    marks = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    pick = {name: ordered[min(n - 1, int(q * n))] * 1e3 for name, q in marks}
    return (
        f"p50 {pick['p50']:.2f} | p90 {pick['p90']:.2f} | p99 {pick['p99']:.2f} "
        f"| p99.5 {ordered[min(n - 1, int(0.995 * n))] * 1e3:.2f} | max {ordered[-1] * 1e3:.2f}"
    )


def _niced(cmd: list[str], nice: int | None) -> list[str]:
    return cmd if nice is None else ["nice", "-n", str(nice), *cmd]


def probe(
    model_dir: Path, config: str, clients: int, seconds: float, prober_nice: int | None, load_nice: int | None
) -> tuple[str, list[float]]:
    """One round of ``config``: its table row, and its /ping latencies (seconds)."""
    body = json.dumps({"inputs": [SENTENCE]}).encode()
    with tempfile.TemporaryDirectory() as tmp, serve(model_dir, Path(tmp), shlex.split(config)) as server:
        load_cmd = hey.hey_command(server.url + "/invocations", seconds + 2, clients, body)
        load = hey.start(_niced(load_cmd, load_nice))
        time.sleep(1.0)  # saturated before the pings start
        ping_cmd = hey.hey_command(server.url + "/ping", seconds, 1, rate_per_client=PING_RATE)
        ping = hey.run(_niced(ping_cmd, prober_nice), seconds)
        result = hey.finish(load, seconds + 2)
    latencies = list(ping.latencies_s)
    return f"| `{config}` | {result.rps:.0f} | {ping.requests} | {quantiles(latencies)} |", latencies


def wake(policy: str, samples: int = 600) -> str:
    """A nice-0 thread sleeping 3 ms, beside two busy processes of ``policy``: its oversleep."""
    prefix = {"none": [], "nice 19": ["nice", "-n", "19"], "SCHED_IDLE": ["chrt", "-i", "0"]}[policy]
    procs = [subprocess.Popen([*prefix, sys.executable, "-c", _BUSY]) for _ in range(2 if prefix else 0)]
    try:
        time.sleep(0.5)
        over = []
        for _ in range(samples):
            t0 = time.perf_counter()
            time.sleep(0.003)
            over.append(time.perf_counter() - t0 - 0.003)
    finally:
        for proc in procs:
            proc.kill()
    return f"| {policy} | {quantiles(over)} |"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", default=[], help="`warmgate serve` arguments (repeat)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=9.0)
    parser.add_argument("--prober-nice", type=int, default=None, help="run the /ping prober under nice -n N")
    parser.add_argument(
        "--load-nice", type=int, default=None, help="run the saturating load generator under nice -n N"
    )
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--wake", action="store_true", help="the scheduler check instead")
    args = parser.parse_args()
    if args.wake:
        print("| busy neighbours | oversleep of a 3 ms sleep, ms |\n| --- | --- |")
        for policy in ("none", "nice 19", "SCHED_IDLE"):
            print(wake(policy), flush=True)
        return 0
    model_dir = _model_dir(args.model_dir)
    configs = args.config or [""]
    print(
        f"{args.clients} clients (nice {args.load_nice or 0}); /ping at {PING_RATE:.0f}/s; "
        f"prober nice {args.prober_nice or 0}\n"
    )
    print("| config | req/s | pings | /ping latency, ms |\n| --- | ---: | ---: | --- |")
    pooled: dict[str, list[float]] = {config: [] for config in configs}
    for round_no in range(args.rounds):
        order = configs if round_no % 2 == 0 else list(reversed(configs))
        for config in order:
            niceness = (args.prober_nice, args.load_nice)
            row, latencies = probe(model_dir, config, args.clients, args.seconds, *niceness)
            pooled[config] += latencies
            print(row, flush=True)
    if args.rounds > 1:  # one run's p99 is its 9th slowest ping: the pooled one is steadier
        print("\n| config, every round pooled | pings | /ping latency, ms |\n| --- | ---: | --- |")
        for config, latencies in pooled.items():
            print(f"| `{config}` | {len(latencies)} | {quantiles(latencies)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
