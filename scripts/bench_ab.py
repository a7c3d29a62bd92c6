"""A/B of two `warmgate serve` configurations on a noisy machine: both replicas run side by side
(idle while the other is loaded), and each round measures raw in-process ONNX Runtime at its best
batch, then A and B (in alternating order) under the same closed-loop load, so every ratio is
taken within one round of one machine state.

    python scripts/bench_ab.py --a="--threads 1" --b="--threads 2" --rounds 4
    python scripts/bench_ab.py --a="--no-batch-regroup" --b="" --clients 32 --seconds 5
    git worktree add ../before HEAD~1 && python scripts/bench_ab.py --a-checkout ../before --loop-cpu

(Write ``--a=...`` with the ``=``: the value itself starts with ``--``.)

Per round and configuration it prints requests/s, the ratio to that round's raw best batch,
p50/p99, /ping p99 (100 pings/s beside the load) and the batch sizes formed; with ``--loop-cpu``
also the event loop's CPU time per request at a fixed rate; then the median of each over the
rounds. Needs hey (Debian package).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warmgate.bench import hey  # noqa: E402
from warmgate.bench.cli import SENTENCE, _model_dir  # noqa: E402
from warmgate.bench.raw import RawSession, best_batch  # noqa: E402
from warmgate.bench.served import Server, histogram_delta, serve  # noqa: E402

PING_RATE = 100.0


@dataclass(frozen=True)
class Row:
    round: int
    raw: float  # that round's raw best-batch sequences/s
    config: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    ping_p99_ms: float
    batches: dict[str, int]
    loop_cpu_us: float = float("nan")  # --loop-cpu: event-loop CPU per request at a fixed rate


def loop_cpu_us(server: Server, body: bytes, seconds: float) -> float:
    """The event loop's CPU time per request (its thread's utime + stime ÷ requests served) at a
    fixed offered rate below saturation (16 clients × 15/s): the per-request work the loop
    takes from the cores the model needs, steadier than any rate on a shared machine."""
    pid = server.proc.pid
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s() -> float:  # the main thread (tid = pid) runs the event loop
        fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    before = cpu_s()
    result = hey.run(
        hey.hey_command(server.url + "/invocations", seconds, 16, body, rate_per_client=15), seconds
    )
    return (cpu_s() - before) / max(result.requests - result.errors, 1) * 1e6


def load(server: Server, body: bytes, clients: int, seconds: float) -> dict[str, object]:
    before = server.batch_histogram()
    ping_cmd = hey.hey_command(server.url + "/ping", max(seconds - 1, 1), 1, rate_per_client=PING_RATE)
    loader = hey.start(hey.hey_command(server.url + "/invocations", seconds, clients, body))
    time.sleep(0.5)  # let the load reach saturation before the pings start
    ping = hey.run(ping_cmd, seconds)
    result = hey.finish(loader, seconds)
    return {
        "rps": result.rps,
        "p50_ms": result.percentile(50) * 1e3,
        "p99_ms": result.percentile(99) * 1e3,
        "errors": result.errors,
        "ping_p99_ms": ping.percentile(99) * 1e3,
        "batches": histogram_delta(before, server.batch_histogram()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", default="", help="`warmgate serve` arguments of A (one string)")
    parser.add_argument("--b", default="", help="`warmgate serve` arguments of B (one string)")
    parser.add_argument("--model-dir", type=Path, default=None)
    for name in ("a", "b"):
        parser.add_argument(
            f"--{name}-checkout",
            type=Path,
            default=None,
            help=f"run {name.upper()}'s server from this checkout's code (e.g. a `git worktree` of "
            "another commit), to A/B two commits in one machine state",
        )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--raw-batches", default="8,16,32,64")
    parser.add_argument("--raw-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    parser.add_argument(
        "--loop-cpu",
        action="store_true",
        help="also measure the event loop's CPU time per request at a fixed rate (Linux)",
    )
    args = parser.parse_args()

    model_dir = _model_dir(args.model_dir)
    body = json.dumps({"inputs": [SENTENCE]}).encode()
    configs = {"A": shlex.split(args.a), "B": shlex.split(args.b)}
    checkouts = {"A": args.a_checkout, "B": args.b_checkout}
    batches = [int(b) for b in args.raw_batches.split(",")]
    rows: list[Row] = []
    where = {name: f" (code of {c})" if c else "" for name, c in checkouts.items()}
    print(
        f"{os.cpu_count()} cores; A: `{args.a}`{where['A']}; B: `{args.b}`{where['B']}; "
        f"{args.clients} clients, {args.seconds:g} s\n"
    )
    print("| round | raw best (seq/s) | config | req/s | ÷ raw | p50 | p99 | /ping p99 |", end=" ")
    print("batches (rows: n) | loop CPU µs/request |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        servers = {
            name: stack.enter_context(serve(model_dir, Path(tmp), argv, checkout=checkouts[name]))
            for name, argv in configs.items()
        }
        raw = RawSession(model_dir, os.cpu_count() or 1)
        for server in servers.values():  # one request each, outside the measurement
            hey.run(hey.hey_command(server.url + "/invocations", 1, 1, body), 1)
        for n in range(args.rounds):
            best = max(r.sequences_per_s for r in best_batch(raw, SENTENCE, batches, args.raw_seconds))
            order = ["A", "B"] if n % 2 == 0 else ["B", "A"]
            for name in order:
                row = Row(n + 1, best, name, **load(servers[name], body, args.clients, args.seconds))  # type: ignore[arg-type]
                if args.loop_cpu:
                    row = replace(row, loop_cpu_us=loop_cpu_us(servers[name], body, args.seconds))
                rows.append(row)
                spread = ", ".join(f"{k}: {v}" for k, v in row.batches.items())
                print(
                    f"| {n + 1} | {best:.0f} | {name} | {row.rps:.0f} | {row.rps / best:.2f} | "
                    f"{row.p50_ms:.1f} ms | {row.p99_ms:.1f} ms | {row.ping_p99_ms:.2f} ms | {spread} | "
                    f"{row.loop_cpu_us:.0f} |",
                    flush=True,
                )
    print("\n| config | median req/s | median ÷ raw | median p99 | median /ping p99 | median loop CPU |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in configs:
        mine = [r for r in rows if r.config == name]
        ratio = statistics.median(r.rps / r.raw for r in mine)
        print(
            f"| {name} | {statistics.median(r.rps for r in mine):.0f} | **{ratio:.2f}** | "
            f"{statistics.median(r.p99_ms for r in mine):.1f} ms | "
            f"{statistics.median(r.ping_p99_ms for r in mine):.2f} ms | "
            f"{statistics.median(r.loop_cpu_us for r in mine):.0f} µs |"
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
