"""Server benchmarks for docs/benchmarks.md. Ratios measured in one run, on this machine.

    python scripts/bench_server.py [startup] [ping] [first] [ready] [--seconds N] [--trials N]

Served throughput against raw ONNX Runtime (best batch, every core) is ``warmgate bench``.

* startup    — process start → first /livez 200, → READY (ONNX and torch), with the phase split
* ping       — /ping p50/p99 (wrk --latency) idle and while /invocations is saturated (wrk)
* first      — per prompt-set shape: first request after READY ÷ steady p50, warmup on vs off,
               ONNX and torch, median over --trials fresh processes; the first request the
               process serves over HTTP also like for like, against the same request after
               the same idle pause
* padding    — raw session.run at 32 × 256: real padded texts vs full-length rows
* gc         — a full garbage collection of a serving heap, before and after gc.freeze()
* idle       — raw session.run (no server) after an idle pause ÷ back to back
* claim      — a warm-pool standby's first request after a claim ÷ steady p50, with the claim's
               keep-warm re-arm (``POST /warmgate/keep-warm``) and without it, alternated
* ready      — time to READY ÷ one raw pass over the bucket plan at steady speed (ONNX), both
               measured in each of --trials fresh processes

Needs wrk (Debian package) and the default model (fetched on first use, or the safetensors
directory ``$WARMGATE_BENCH_MODEL``); the ONNX export is written under ``$WARMGATE_BENCH_DIR``
(default ``./out/bench``, git-ignored). ``$WARMGATE_BENCH_ARGS``: extra ``warmgate serve`` flags
(``--device cuda`` on a GPU: ``first --backends torch`` then needs no ONNX export).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.process import Replica, replica  # noqa: E402
from warmgate.bench.ready import costliest, ready_figures  # noqa: E402
from warmgate.bench.served import serve  # noqa: E402
from warmgate.models.fetch import default_cache_dir, fetch_default_model  # noqa: E402
from warmgate.server.heap import freeze_startup_heap  # noqa: E402
from warmgate.warmup.promptset import default_prompt_set  # noqa: E402

WORK = Path(os.environ.get("WARMGATE_BENCH_DIR", ROOT / "out" / "bench"))
SHORT = "recommend a manga like Berserk"
SERVER_ARGS = os.environ.get("WARMGATE_BENCH_ARGS", "").split()  # extra `warmgate serve` flags


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}"
    )


def model_dirs(onnx: bool) -> dict[str, Path]:
    """``torch``: the fetched safetensors directory (``$WARMGATE_BENCH_MODEL`` where set: a
    machine with no registry); ``onnx``, when asked for: a copy with ``model.onnx`` exported."""
    given = os.environ.get("WARMGATE_BENCH_MODEL")
    torch_dir = (
        Path(given)
        if given
        else fetch_default_model(default_cache_dir(), lambda m: print(m, file=sys.stderr))
    )
    if not onnx:
        return {"torch": torch_dir}
    onnx_dir = WORK / "minilm-onnx"
    if not (onnx_dir / "model.onnx").is_file():
        from warmgate.models.text import export_onnx

        shutil.copytree(torch_dir, onnx_dir, dirs_exist_ok=True)
        export_onnx(onnx_dir)
    return {"onnx": onnx_dir, "torch": torch_dir}


@contextmanager
def ready_server(model_dir: Path, *args: str) -> Iterator[Replica]:
    with tempfile.TemporaryDirectory() as tmp, replica(model_dir, Path(tmp), *args) as server:
        server.wait_for("/ping", 200, timeout_s=600)
        yield server


# --- wrk ---------------------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert m, text
    return float(m.group(1)) * _UNIT[m.group(2)]


def wrk(url: str, seconds: int, connections: int, body: str | None = None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:
            script = Path(tmp) / "post.lua"
            script.write_text(
                f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            cmd[1:1] = ["-s", str(script)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        result[f"p{pct}"] = _ms(m.group(1)) if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


# --- benchmarks --------------------------------------------------------------------------------


def bench_startup(dirs: dict[str, Path]) -> None:
    print("\n### Start-up (process start → first /livez 200, → READY)\n")
    print("| backend | first /livez 200 | READY | load phase | warmup phase | shapes warmed |")
    print("| --- | --- | --- | --- | --- | --- |")
    for backend, model_dir in dirs.items():
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with replica(model_dir, Path(tmp), "--backend", backend) as server:
                server.wait_for("/livez", 200)
                t_live = time.perf_counter() - t0
                ready = server.wait_for("/ping", 200, timeout_s=600)
                t_ready = time.perf_counter() - t0
                del ready
                log = server.log.read_text()
                shapes = server.get("/readyz").json()["warmup"]["total"]
        load = re.search(r"phase loading -> warming after ([\d.]+)s", log)
        warm = re.search(r"phase warming -> ready after ([\d.]+)s", log)
        print(
            f"| {backend} | {t_live:.2f} s | {t_ready:.1f} s | {float(load.group(1)) if load else 0:.2f} s "
            f"| {float(warm.group(1)) if warm else 0:.1f} s | {shapes} |"
        )
    for module in ("onnxruntime", "torch"):
        code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
        secs = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
        print(f"\nimport {module}: {secs:.2f} s", end="")
    print()


def bench_ping(dirs: dict[str, Path], seconds: int, rounds: int = 3) -> None:
    print("\n### /ping latency, idle and with /invocations saturated (ONNX backend)\n")
    rows: list[tuple[str, dict[str, float]]] = []
    loads: list[dict[str, float]] = []
    body = json.dumps({"inputs": [SHORT]})
    with ready_server(dirs["onnx"], *SERVER_ARGS) as server:
        rows.append(("idle", wrk(server.url + "/ping", seconds, 1)))
        for i in range(rounds):
            with subprocess.Popen(
                [sys.executable, __file__, "_load", server.url, str(seconds + 2), body],
                stdout=subprocess.PIPE,
                text=True,
            ) as load:
                time.sleep(1.0)
                rows.append((f"/invocations saturated, round {i + 1}", wrk(server.url + "/ping", seconds, 1)))
                loads.append(json.loads(load.communicate()[0]))
    print("| /ping | p50 | p90 | p99 | non-2xx |")
    print("| --- | --- | --- | --- | --- |")
    for label, r in rows:
        print(f"| {label} | {r['p50']:.2f} ms | {r['p90']:.2f} ms | {r['p99']:.2f} ms | {r['non2xx']:.0f} |")
    p99s = sorted(r["p99"] for label, r in rows if label != "idle")
    print(f"\nSaturated /ping p99, median of {rounds} rounds: {statistics.median(p99s):.2f} ms")
    for load_out in loads:
        print(
            f"- load meanwhile: {load_out['rps']:.0f} /invocations per s (wrk -c32), "
            f"p99 {load_out['p99']:.1f} ms, {load_out['non2xx']:.0f} non-2xx "
            "(503 = shed by admission control)"
        )


PAUSE_S = 0.25  # idle time before the first request, and before each of its like-for-like controls
PAUSED_RUNS = 9
KEEP_WARM_MS = (5, 20, 50)  # bench_idle: how often the model runs on a tiny input through a pause


@dataclass
class FirstRun:
    """One fresh server: per prompt-set line, its first request ÷ the median of the next runs,
    sent back to back. The first line's first request is the first the process serves over HTTP
    and comes after an idle pause (as any first request after READY does); it is also divided
    by the median of ``PAUSED_RUNS`` requests of the same line, each sent after the same pause."""

    ratios: dict[str, float]
    first_paused: float  # the first line's first request ÷ its p50 after the same pause
    paused_cost: float  # the first line's p50 after a pause ÷ its back-to-back p50


def first_ratios(model_dir: Path, backend: str, warmup: bool, steady_runs: int) -> FirstRun:
    flags = ("--backend", backend, "--warmup" if warmup else "--no-warmup", *SERVER_ARGS)
    ratios: dict[str, float] = {}
    first_paused = paused_cost = float("nan")
    with ready_server(model_dir, *flags) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/ping").raise_for_status()  # open the connection: measure inference, not TCP

        def timed(body: bytes, headers: dict[str, str]) -> float:
            t0 = time.perf_counter()
            client.post("/invocations", content=body, headers=headers).raise_for_status()
            return time.perf_counter() - t0

        for i, line in enumerate(default_prompt_set()):
            headers = {"Content-Type": line.content_type, "Accept": line.accept}
            if i == 0:
                time.sleep(PAUSE_S)
            samples = [timed(line.body, headers) for _ in range(steady_runs + 1)]
            back_to_back = statistics.median(samples[1:])
            ratios[line.name] = samples[0] / back_to_back
            if i == 0:
                paused = []
                for _ in range(PAUSED_RUNS):
                    time.sleep(PAUSE_S)
                    paused.append(timed(line.body, headers))
                first_paused = samples[0] / statistics.median(paused)
                paused_cost = statistics.median(paused) / back_to_back
    return FirstRun(ratios, first_paused, paused_cost)


def bench_first(dirs: dict[str, Path], steady_runs: int, trials: int, backends: list[str]) -> None:
    print(
        f"\n### First request after READY ÷ steady p50, per default prompt-set shape "
        f"(median over {trials} fresh processes)\n"
    )
    table: dict[str, dict[str, float]] = {}
    columns = []
    first_http: dict[str, list[FirstRun]] = {}
    for backend in backends:
        for warmup in (True, False):
            column = f"{backend} warmup {'on' if warmup else 'off'}"
            columns.append(column)
            runs = [first_ratios(dirs[backend], backend, warmup, steady_runs) for _ in range(trials)]
            first_http[column] = runs
            for name in runs[0].ratios:
                table.setdefault(name, {})[column] = statistics.median(r.ratios[name] for r in runs)
    print("| shape | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name, row in table.items():
        print(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in columns) + " |")
    summary = []
    for c in columns:
        values = [row[c] for row in table.values()]
        summary.append(f"**{max(values):.2f} / {statistics.median(values):.2f}**")
    print("| **max / median** | " + " | ".join(summary) + " |")
    first = next(iter(table))
    print(
        f"\nThe first request the process serves over HTTP ({first}) comes {PAUSE_S:g} s after the "
        f"connection opened; back-to-back p50 above. Like for like, the same request sent after "
        f"the same pause ({PAUSED_RUNS} times, median), per trial:\n"
    )
    print("| column | first ÷ p50 after the same pause | p50 after a pause ÷ back-to-back p50 |")
    print("| --- | --- | --- |")
    for c, runs in first_http.items():
        like = ", ".join(f"{r.first_paused:.2f}" for r in runs)
        idle = ", ".join(f"{r.paused_cost:.2f}" for r in runs)
        print(f"| {c} | {like} | {idle} |")


def bench_idle(dirs: dict[str, Path], rounds: int = 9) -> None:
    """Raw in-process ``session.run`` (no warmgate) of one short sentence after an idle pause ÷
    back to back: what any request after a pause pays on this machine, warm or not. Then the
    same pauses twice more: with a thread per core waking every millisecond (is the cost the
    CPUs going idle: halted vCPUs, deep C-states?), and with the model itself run on a tiny
    input every few milliseconds through the pause (is it the model's memory going cold in
    caches other tenants share?), at ``KEEP_WARM_MS`` intervals."""
    import threading

    from warmgate.bench.raw import RawSession, sentence_feed, timed

    raw = RawSession(dirs["onnx"], os.cpu_count() or 1)
    feed, tiny = sentence_feed(raw, SHORT), sentence_feed(raw, "hi")
    for _ in range(20):
        raw.run(feed)
    back_to_back = statistics.median(timed(raw, feed) for _ in range(50))
    tiny_s = statistics.median(timed(raw, tiny) for _ in range(20))
    print(f"\n### Raw session.run after an idle pause ÷ back to back ({raw.threads} threads, batch 1)\n")
    print(
        f"Back to back: {back_to_back * 1e3:.2f} ms; the keep-warm input (one token): {tiny_s * 1e3:.2f} ms\n"
    )
    keep = " | ".join(f"model run every {ms:g} ms" for ms in KEEP_WARM_MS)
    print(f"| pause | median ÷ back to back | max ÷ back to back | CPUs kept awake | {keep} |")
    print("| ---: | ---: | ---: | ---: |" + " ---: |" * len(KEEP_WARM_MS))
    awake = threading.Event()

    def tick() -> None:
        while True:
            awake.wait()
            time.sleep(0.001)

    for _ in range(os.cpu_count() or 1):
        threading.Thread(target=tick, daemon=True).start()

    def paused(pause: float, every: float | None = None) -> list[float]:
        """``rounds`` runs ÷ back to back, each after ``pause``; with ``every``, the tiny input
        runs every ``every`` seconds through the pause (none in its last 5 ms)."""
        samples = []
        for _ in range(rounds):
            end = time.perf_counter() + pause
            while (left := end - time.perf_counter()) > 0:
                time.sleep(min(every or left, left))
                if every is not None and end - time.perf_counter() > 0.005:
                    raw.run(tiny)
            samples.append(timed(raw, feed) / back_to_back)
        return samples

    for pause in (0.001, 0.005, 0.02, 0.1, PAUSE_S):
        plain = paused(pause)
        awake.set()
        kept = statistics.median(paused(pause))
        awake.clear()
        warm = " | ".join(
            f"{statistics.median(paused(pause, ms / 1e3)):.2f}" if ms / 1e3 < pause else "–"
            for ms in KEEP_WARM_MS
        )
        median = statistics.median(plain)
        print(f"| {pause * 1e3:g} ms | {median:.2f} | {max(plain):.2f} | {kept:.2f} | {warm} |")


def bench_padding(dirs: dict[str, Path], rounds: int = 3) -> None:
    """Raw ``session.run`` at one shape, 32 × 256, filled two ways: the default prompt set's
    ``batch-32-with-long`` (real texts, mostly short, padded to the longest) and 32 full-length
    rows (what a synthetic warmup request sends). Fastest of ``rounds`` each, interleaved."""
    from warmgate.bench.raw import RawSession, timed
    from warmgate.models.text.tokenizer import TextTokenizer, pad_batch

    raw = RawSession(dirs["onnx"], os.cpu_count() or 1)
    tokenizer = TextTokenizer(dirs["onnx"] / "tokenizer.json", 256)  # the model's max_seq_length
    line = next(x for x in default_prompt_set() if x.name == "batch-32-with-long")
    real = tokenizer.encode(json.loads(line.body)["inputs"])
    full = tokenizer.encode(["hello " * 600] * 32)
    seq = max(len(r) for r in real)
    feeds = {
        f"batch-32-with-long ({sum(map(len, real))} real tokens)": raw.feed(
            *pad_batch(real, 32, seq, raw.tokenizer.pad_id)
        ),
        f"full rows ({32 * seq} real tokens)": raw.feed(*pad_batch(full, 32, seq, raw.tokenizer.pad_id)),
    }
    best = dict.fromkeys(feeds, float("inf"))
    raw.run(next(iter(feeds.values())))
    for _ in range(rounds):
        for label, feed in feeds.items():
            best[label] = min(best[label], timed(raw, feed))
    print(f"\n### One shape, 32 × {seq}, two fillings (raw session.run, fastest of {rounds})\n")
    print("| filling | session.run |\n| --- | ---: |")
    for label, seconds in best.items():
        print(f"| {label} | {seconds * 1e3:.0f} ms |")


def bench_gc(dirs: dict[str, Path], rounds: int = 5) -> None:
    """A full garbage collection of a serving process's heap (server modules, the ONNX model,
    leftovers of warmup-sized work), before and after ``gc.freeze()`` (what ``serve`` does
    before READY): what a request that triggers one pays."""
    import gc

    import warmgate.server.app  # noqa: F401 - the modules a replica holds
    from warmgate.config import load_config
    from warmgate.models.loader import build_model

    config = load_config({"model_dir": str(dirs["onnx"]), "fetch_default": "0"}, env={})
    model = build_model(config, dirs["onnx"], "bench")
    model.load()
    for line in default_prompt_set():  # leftovers of warmup-sized work
        texts = line.body.decode() if line.content_type == "text/plain" else json.loads(line.body)["inputs"]
        model.infer([model.prepare(texts)])

    def full_collections() -> list[float]:
        out = []
        for _ in range(rounds):
            garbage = [[{"x": [i]}] for i in range(1000)]  # what some requests leave behind
            del garbage
            t0 = time.perf_counter()
            gc.collect()
            out.append(time.perf_counter() - t0)
        return out

    print(f"\n### A full garbage collection of a serving heap ({len(gc.get_objects())} objects tracked)\n")
    before = full_collections()
    freeze_startup_heap()  # what serve does at READY
    after = full_collections()
    gc.unfreeze()
    print("| heap | full collection, median (range) |\n| --- | --- |")
    for label, values in (("as loaded and warmed", before), ("after gc.freeze()", after)):
        low, high = min(values) * 1e3, max(values) * 1e3
        print(f"| {label} | {statistics.median(values) * 1e3:.2f} ms ({low:.2f}–{high:.2f}) |")


STANDBY_IDLE_S = 3.0  # a standby idle past its own keep-warm (served with --keep-warm-s 1)
ADMIT_S = 0.2  # claim -> first request: the fleet's HAProxy check interval (rise 1)


def bench_claim(dirs: dict[str, Path], cycles: int = 8) -> None:
    """One replica standing in for a warm-pool standby: each cycle it idles past its keep-warm,
    is claimed (re-armed or not, the arms alternated), and gets its first request ``ADMIT_S``
    later; that request ÷ the median of 10 back to back right after it."""
    line = default_prompt_set()[0]
    headers = {"Content-Type": line.content_type, "Accept": line.accept}
    rearmed, plain = "re-armed on the claim", "not re-armed"
    ratios: dict[str, list[float]] = {rearmed: [], plain: []}
    with (
        ready_server(dirs["onnx"], "--keep-warm-s", "1", *SERVER_ARGS) as server,
        httpx.Client(base_url=server.url, timeout=60) as client,
    ):

        def timed() -> float:
            t0 = time.perf_counter()
            client.post("/invocations", content=line.body, headers=headers).raise_for_status()
            return time.perf_counter() - t0

        for cycle in range(2 * cycles):
            rearm = cycle % 2 == 0
            time.sleep(STANDBY_IDLE_S)
            if rearm:
                assert client.post("/warmgate/keep-warm").status_code == 202
            time.sleep(ADMIT_S)
            first = timed()
            ratios[rearmed if rearm else plain].append(first / statistics.median(timed() for _ in range(10)))
    print(
        f"\n### A standby's first request after a claim ÷ its steady p50 ({line.name}, idle "
        f"{STANDBY_IDLE_S:g} s past a 1 s keep-warm, first request {ADMIT_S:g} s after the claim)\n"
    )
    print("| claim | median | cycles |")
    print("| --- | ---: | --- |")
    for arm, values in ratios.items():
        print(f"| {arm} | **{statistics.median(values):.2f}** | {', '.join(f'{v:.2f}' for v in values)} |")


def bench_ready(dirs: dict[str, Path], trials: int) -> None:
    """Each trial: a fresh replica to READY, then one raw pass over its plan in the same state."""
    print(f"\n### Time to READY ÷ one pass over the bucket plan (ONNX, {trials} fresh processes)\n")
    print("| trial | READY | loading | warming | one pass | warming ÷ pass | READY ÷ pass |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    figures = []
    for trial in range(1, trials + 1):
        with tempfile.TemporaryDirectory() as tmp, serve(dirs["onnx"], Path(tmp), SERVER_ARGS) as server:
            f = ready_figures(server, dirs["onnx"], os.cpu_count() or 1)
        figures.append(f)
        print(
            f"| {trial} | {f.ready_s:.2f} s | {f.loading_s:.2f} s | {f.warming_s:.2f} s | {f.pass_s:.2f} s "
            f"| {f.warming_ratio:.2f} | {f.ready_ratio:.2f} |",
            flush=True,
        )
    ready = sorted(f.ready_ratio for f in figures)
    warming = sorted(f.warming_ratio for f in figures)
    print(
        f"\nREADY ÷ pass: median **{statistics.median(ready):.2f}** (range {ready[0]:.2f}–{ready[-1]:.2f}); "
        f"warming ÷ pass: median {statistics.median(warming):.2f} (range {warming[0]:.2f}–{warming[-1]:.2f})"
    )
    for i, f in enumerate(figures, 1):
        print(f"- trial {i} warmup: {f.warmup}")
    median = sorted(figures, key=lambda f: f.ready_ratio)[len(figures) // 2]
    print(f"\nWhere the median trial's warming went (its costliest shapes):\n\n{costliest(median)}")


def main() -> None:
    if sys.argv[1:2] == ["_load"]:  # internal: the saturating load, run as its own process
        url, seconds, body = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        print(json.dumps(wrk(url + "/invocations", seconds, 32, body)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", nargs="*", default=["startup", "ping", "first", "ready"])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=3, help="fresh processes per `first` column")
    parser.add_argument("--backends", default="onnx,torch", help="backends of the `first` columns")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    backends = args.backends.split(",")
    dirs = model_dirs(onnx="onnx" in backends or any(name != "first" for name in args.which))
    for name in args.which:
        {
            "startup": lambda: bench_startup(dirs),
            "ping": lambda: bench_ping(dirs, args.seconds),
            "first": lambda: bench_first(dirs, 20, args.trials, backends),
            "ready": lambda: bench_ready(dirs, args.trials),
            "claim": lambda: bench_claim(dirs),
            "idle": lambda: bench_idle(dirs),
            "gc": lambda: bench_gc(dirs),
            "padding": lambda: bench_padding(dirs),
        }[name]()


if __name__ == "__main__":
    main()
