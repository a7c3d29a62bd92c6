"""Several replica processes on one machine: what N `warmgate serve` processes serve together.

    python scripts/bench_replicas.py --replicas 1,2,4 [--device cuda] [--model-dir DIR]

For each N: N replicas start at once (each its own process and event loop), and once all are
READY each gets its own `hey` (--clients closed-loop clients, one 17-token sentence a request)
for --seconds, all at the same time. Prints per N: total requests/s, its ratio to N = 1, the
worst replica's p50/p99, and on CUDA the GPU memory in use (nvidia-smi). Where one replica's
event loop bounds it (a GPU; docs/benchmarks.md "On a GPU"), this is how far more processes
on the same device go. Needs hey (Debian package).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warmgate.bench import hey  # noqa: E402
from warmgate.bench.cli import SENTENCE, _model_dir, serve_args  # noqa: E402
from warmgate.bench.served import Server, serve  # noqa: E402


def gpu_memory_used_mib() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "-"
    return f"{int(out.split()[0]):,} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", default="1,2,4")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients per replica")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG")
    args = parser.parse_args()
    model_dir = _model_dir(args.model_dir, args.device)
    server_args = serve_args(args.device, args.server_arg)
    body = json.dumps({"inputs": [SENTENCE]}).encode()
    flags = " ".join(server_args)
    print(f"`warmgate serve {flags}`, {args.clients} clients per replica, {args.seconds:g} s each\n")
    print("| replicas | requests/s in all | ÷ 1 replica | worst p50 | worst p99 | non-2xx | GPU memory |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    single = 0.0
    for count in (int(n) for n in args.replicas.split(",")):
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:

            def start(_: int, tmp: str = tmp, stack: ExitStack = stack) -> Server:
                return stack.enter_context(serve(model_dir, Path(tmp), server_args))

            with ThreadPoolExecutor(count) as pool:  # started at once, each waited on until READY
                servers = list(pool.map(start, range(count)))
            memory = gpu_memory_used_mib() if args.device == "cuda" else "-"
            for server in servers:  # one request each: the connection path is warm
                hey.run(hey.hey_command(server.url + "/invocations", 1, 1, body), 1)
            loads = [
                hey.start(hey.hey_command(s.url + "/invocations", args.seconds, args.clients, body))
                for s in servers
            ]
            results = [hey.finish(load, args.seconds) for load in loads]
        total = sum(r.rps for r in results)
        single = single or total / count
        p50 = max(r.percentile(50) for r in results) * 1e3
        p99 = max(r.percentile(99) for r in results) * 1e3
        errors = sum(r.errors for r in results)
        print(f"| {count} | {total:.0f} | {total / single:.2f} | {p50:.1f} ms | {p99:.1f} ms ", end="")
        print(f"| {errors} | {memory} |")


if __name__ == "__main__":
    main()
