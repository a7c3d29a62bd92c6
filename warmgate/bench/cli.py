"""``warmgate bench``: every throughput, latency, memory and start-up figure of
docs/benchmarks.md in one run on one machine, printed as markdown.

1. the raw model in process, every core: sequences/s of one 17-token sentence at batch 1 … 64,
   and the best of them: the denominator. ONNX Runtime ``session.run`` on the CPU; with
   ``--device cuda``, the torch encoder on the GPU, eager (the replica serves the safetensors
   weights there, with CUDA graphs);
2. a ``warmgate serve`` process: time to READY (and its warmup phase) against one pass over
   its own bucket plan at steady speed;
3. ``hey`` as a separate process: served throughput at 8 and 32 clients (÷ raw best batch),
   ``/ping`` p99 at saturation (100 pings/s beside the 32 clients), the batch sizes the
   batcher formed then, p50/p99 at 50 % and 90 % of saturation (rate-limited), peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import httpx

from warmgate.bench import hey
from warmgate.bench.raw import RawSession, best_batch, open_raw
from warmgate.bench.ready import ready_figures
from warmgate.bench.served import Server, histogram_delta, serve

SENTENCE = "I am looking for a dark fantasy manga like Berserk with great art"  # 17 tokens (MiniLM)
PING_RATE = 100.0  # /ping requests per second beside the saturating load


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="served throughput vs raw ONNX Runtime, latency, /ping, memory, time to READY",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="a text model directory: model.onnx on the CPU, model.safetensors on cuda "
        "(default: the default model, exported to ONNX once for the CPU)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where the raw model and the replica run (cuda: the torch backend)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument("--raw-seconds", type=float, default=2.0, help="length of each raw batch size")
    parser.add_argument("--batches", default="1,2,4,8,16,32,64", help="raw batch sizes to try")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra `warmgate serve` argument (repeat it: --server-arg=--threads --server-arg=2)",
    )
    parser.add_argument(
        "--no-ready-pass",
        dest="ready_pass",
        action="store_false",
        help="skip timing one pass over the bucket plan (throughput experiments)",
    )
    parser.set_defaults(func=run)


def _model_dir(given: Path | None, device: str = "cpu") -> Path:
    if given is not None:
        return given
    import shutil

    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    source = fetch_default_model(default_cache_dir(), lambda m: print(m, flush=True))
    if device != "cpu":
        return source
    # its own directory: exports there before the weights moved to model.onnx.data are one file
    target = source.parent / f"{source.name}-onnx-external-data"
    if not (target / "model.onnx").is_file() or not (target / "model.onnx.data").is_file():
        from warmgate.models.text import export_onnx

        shutil.copytree(source, target, dirs_exist_ok=True)
        export_onnx(target)
    return target


def serve_args(device: str, extra: list[str]) -> list[str]:
    """`warmgate serve` arguments for a replica on ``device`` (on a GPU: the torch backend, whose
    CUDA graphs the replica captures), then ``extra``."""
    return extra if device == "cpu" else ["--device", device, "--backend", "torch", *extra]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def _cpu_shares(before: dict[int, float], after: dict[int, float], seconds: float) -> dict[int, float]:
    """Each thread's CPU use between two readings, in cores (1.0: one core all the time)."""
    return {tid: (cpu - before.get(tid, 0.0)) / seconds for tid, cpu in after.items()}


def _saturate(server: Server, body: bytes, clients: int, seconds: float) -> hey.LoadResult:
    return hey.run(hey.hey_command(server.url + "/invocations", seconds, clients, body), seconds)


def run(args: argparse.Namespace) -> int:
    model_dir = _model_dir(args.model_dir, args.device)
    cores = os.cpu_count() or 1
    server_args = serve_args(args.device, args.server_arg)
    seconds = float(args.seconds)
    python = platform.python_version()
    print(f"Machine: {platform.machine()}, {cores} cores, Python {python}, {platform.platform()}")
    print(f"Model: {model_dir.name}; sentence of 17 tokens; load generator: hey (separate process)\n")

    raw = open_raw(model_dir, args.device, cores)
    (row,) = raw.tokenizer.encode([SENTENCE])
    batches = [int(b) for b in args.batches.split(",")]
    rates = best_batch(raw, SENTENCE, batches, float(args.raw_seconds))
    best = max(rates, key=lambda r: r.sequences_per_s)
    print(f"### Raw in-process {raw.describe()}\n")
    print("| batch | sequences/s |\n| ---: | ---: |")
    for rate in rates:
        print(f"| {rate.batch} | {rate.sequences_per_s:.0f} |")
    print(f"\nBest: **{best.sequences_per_s:.0f} sequences/s at batch {best.batch}** (the denominator)\n")
    del raw
    ceiling = best.sequences_per_s  # the best of every raw layout measured
    if args.device == "cpu" and cores >= 2:  # `serve --instances 2`: two runs at once, half the cores each
        halves = RawSession(model_dir, cores // 2)
        paired = max(
            best_batch(halves, SENTENCE, [b for b in batches if b <= 32], float(args.raw_seconds), 2),
            key=lambda r: r.sequences_per_s,
        )
        print(
            f"Two runs at once on one session, {halves.threads} intra-op thread(s) each: best "
            f"**{paired.sequences_per_s:.0f} sequences/s at batch {paired.batch} each** "
            f"({paired.sequences_per_s / best.sequences_per_s:.2f} x the denominator)\n"
        )
        del halves
        ceiling = max(ceiling, paired.sequences_per_s)

    body = json.dumps({"inputs": [SENTENCE]}).encode()
    with tempfile.TemporaryDirectory() as tmp, serve(model_dir, Path(tmp), server_args) as server:
        ready = ready_figures(server, model_dir, cores, args.device, args.ready_pass)

        httpx.post(server.url + "/invocations", content=body, timeout=60).raise_for_status()
        served = {8: _saturate(server, body, 8, seconds)}
        before = server.batch_histogram()
        ping_cmd = hey.hey_command(server.url + "/ping", max(seconds - 2, 1), 1, rate_per_client=PING_RATE)
        cpu_before, t0 = server.thread_cpu_seconds(), time.perf_counter()
        load = hey.start(hey.hey_command(server.url + "/invocations", seconds, 32, body))
        time.sleep(1.0)
        ping = hey.run(ping_cmd, seconds)
        served[32] = hey.finish(load, seconds)
        cpu = _cpu_shares(cpu_before, server.thread_cpu_seconds(), time.perf_counter() - t0)
        loop_share = cpu.get(server.proc.pid, 0.0)
        batches_formed = histogram_delta(before, server.batch_histogram())
        saturation = max(r.rps for r in served.values())
        at_rate = {}
        for fraction in (0.5, 0.9):
            clients = 16
            cmd = hey.hey_command(
                server.url + "/invocations",
                seconds,
                clients,
                body,
                rate_per_client=fraction * saturation / clients,
            )
            at_rate[fraction] = hey.run(cmd, seconds)
        rss = server.peak_rss_bytes()

    flags = " ".join(server_args)
    print(f"### Served (`warmgate serve {flags}`), /invocations, one {len(row)}-token sentence per request\n")
    print("| clients | requests/s | ÷ raw best batch | ÷ best raw layout | p50 | p99 | non-2xx |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for clients, r in served.items():
        print(
            f"| {clients} | {r.rps:.0f} | **{r.rps / best.sequences_per_s:.2f}** | {r.rps / ceiling:.2f} "
            f"| {_ms(r.percentile(50))} | {_ms(r.percentile(99))} | {r.errors} |"
        )
    print("\n| offered load | achieved requests/s | p50 | p99 | non-2xx |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for fraction, result in at_rate.items():
        print(
            f"| {fraction:.0%} of saturation ({fraction * saturation:.0f}/s) | {result.rps:.0f} "
            f"| {_ms(result.percentile(50))} | {_ms(result.percentile(99))} | {result.errors} |"
        )
    print(
        f"\n/ping at saturation (32 clients, {PING_RATE:.0f} pings/s, {ping.requests} pings): "
        f"p50 {_ms(ping.percentile(50))}, **p99 {_ms(ping.percentile(99))}**, {ping.errors} non-2xx"
    )
    total = sum(batches_formed.values()) or 1
    shares = ", ".join(f"{k} rows: {v / total:.0%}" for k, v in batches_formed.items())
    print(f"\nBatches formed at saturation (32 clients, {total} batches): {shares}")
    print(
        f"\nReplica CPU during the 32-client run: {sum(cpu.values()):.2f} cores in all, its event loop "
        f"(main thread) **{loop_share:.0%}** of a core, its busiest other thread "
        f"{max((v for k, v in cpu.items() if k != server.proc.pid), default=0.0):.0%}"
    )
    print(f"\nPeak RSS after warmup and all load: **{rss / 2**20:.0f} MiB**")
    print(f"\n{ready.line()}")
    print(f"\nWarmup: {ready.warmup}")
    return 0
