"""Memory and start-up of the ONNX text model: arena policies, the graph cache, threads.

    python scripts/bench_memory.py raw [--seconds 5]     # per arena policy, in-process
    python scripts/bench_memory.py served [--seconds 10] # warmgate serve under wrk: peak RSS
    python scripts/bench_memory.py served --arena shrink --serve-args="" --serve-args="--no-ort-prepacking"
    python scripts/bench_memory.py cache [--repeat 5]    # session open: cold vs graph cache hit
    python scripts/bench_memory.py options [--seconds 5] # threads, spinning, optimisation level
    python scripts/bench_memory.py transients            # what one run of each bucket adds to RSS

``raw`` runs each arena policy in a fresh process: open the session, run every bucket of the
default plan once (what warmup does), then one 17-token sentence per row at batch 32 and at
batch 1 for ``--seconds`` each; it prints RSS after warming, peak RSS, and sequences/s.
``served`` starts ``warmgate serve`` on the exported model per policy, waits for READY (every
bucket warmed), drives ``/invocations`` with ``wrk -c32`` and reads the process's peak RSS
(``VmHWM``); each ``--serve-args`` string (write it with the ``=``) is one more server per
policy with those extra ``warmgate serve`` flags. The model is the default all-MiniLM-L6-v2,
exported once under ``$WARMGATE_BENCH_DIR`` (default ``./out/bench``, git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SENTENCE = "A quick brown fox jumps over the lazy dog near the riverbank today."  # 17 tokens
ARENAS = ("default", "same", "shrink", "off")


def machine() -> str:
    import onnxruntime

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"onnxruntime {onnxruntime.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def onnx_dir() -> Path:
    """A model directory with the default model's tokenizer/configs and its ``model.onnx``."""
    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    out = Path(os.environ.get("WARMGATE_BENCH_DIR", "out/bench")) / "minilm-onnx"
    if (out / "model.onnx").is_file() and (out / "model.onnx.data").is_file():
        return out
    src = fetch_default_model(default_cache_dir())
    out.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name != "model.safetensors":
            (shutil.copytree if item.is_dir() else shutil.copy)(item, out / item.name)
    from warmgate.models.text import export_onnx

    export_onnx(src, out / "model.onnx")
    return out


def _child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- raw, in-process, one fresh process per setting ------------------------------------------

_RAW = r"""
import json, sys, time
from pathlib import Path
from warmgate.config import Arena
from warmgate.models.memory import peak_rss_bytes, rss_bytes
from warmgate.models.ort_session import OptLevel, OrtSettings
from warmgate.models.text.onnx_backend import OnnxTextModel

SENTENCE = sys.argv[7]
model_dir, arena, level = sys.argv[1], sys.argv[2], sys.argv[5]
seconds, threads = float(sys.argv[3]), int(sys.argv[4])
spin = sys.argv[6] == "1"
settings = OrtSettings(threads=threads, arena=Arena(arena), opt_level=OptLevel(level), spinning=spin)
model = OnnxTextModel(model_dir, device="cpu", ort=settings)
t0 = time.perf_counter()
model.load()
load_s = time.perf_counter() - t0
base, base_peak = rss_bytes(), peak_rss_bytes()
for bucket in model.buckets() if sys.argv[8] == "warm" else ():
    model.infer([model.prepare(json.loads(model.synthetic_request(bucket).body)["inputs"])])
warm = rss_bytes()
def rate(batch):
    item = model.prepare([SENTENCE] * batch)
    model.infer([item])
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        model.infer([item]); n += batch
    return n / (time.perf_counter() - t)
b32, b1 = rate(32), rate(1)
print(json.dumps({"load_s": load_s, "rss_loaded": base, "peak_loaded": base_peak, "rss_warm": warm,
                  "rss_after_load": rss_bytes(), "peak": peak_rss_bytes(), "b32": b32, "b1": b1}))
"""


def bench_raw(model_dir: Path, seconds: float, arenas: tuple[str, ...]) -> None:
    threads = os.cpu_count() or 1
    print(f"Machine: {machine()}. Raw in-process OnnxTextModel, {threads} intra-op threads, spinning off.")
    print(f"Every bucket of the default plan (batch 1-32 x seq 16-256) run once, then {seconds:g} s each at")
    print("batch 32 and batch 1 of a 17-token sentence.\n")
    print("| arena | RSS after load (peak) | RSS after warming every bucket | peak RSS |", end=" ")
    print("seq/s batch 32 | seq/s batch 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for arena in arenas:
        r = _child(_RAW, str(model_dir), arena, str(seconds), str(threads), "all", "0", SENTENCE, "warm")
        print(
            f"| {arena} | {r['rss_loaded'] / 2**20:.0f} MB ({r['peak_loaded'] / 2**20:.0f}) | "
            f"{r['rss_warm'] / 2**20:.0f} MB | "
            f"{r['peak'] / 2**20:.0f} MB | {r['b32']:.0f} | {r['b1']:.0f} |"
        )


_TRANSIENTS = r"""
import json, sys, time
from pathlib import Path
from warmgate.models.text.onnx_backend import OnnxTextModel

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

model = OnnxTextModel(sys.argv[1], device="cpu", run_tokens=int(sys.argv[2]), run_scores=int(sys.argv[3]))
model.load()
def texts(bucket):
    return json.loads(model.synthetic_request(bucket).body)["inputs"]

items = {b.label(): model.prepare(texts(b)) for b in model.buckets()}
items["b32 x 17 tokens"] = model.prepare([sys.argv[4]] * 32)
for item in items.values():  # every shape once first: what follows is each run's own transient
    model.infer([item])
added, ms = {}, {}
for label, item in items.items():
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status("VmRSS")
    model.infer([item])
    added[label] = status("VmHWM") - before
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.infer([item])
        runs.append(time.perf_counter() - t0)
    ms[label] = sorted(runs)[1] * 1e3
print(json.dumps({"added": added, "ms": ms, "rss": status("VmRSS")}))
"""


def bench_transients(model_dir: Path) -> None:
    """What one run of each bucket adds to RSS, per chunking policy (in-process, HWM reset)."""
    from warmgate.models.text.onnx_backend import DEFAULT_RUN_SCORES, DEFAULT_RUN_TOKENS

    print(f"Machine: {machine()}. In-process OnnxTextModel; every bucket run once, then each again")
    print("with VmHWM reset before it: the MiB its run adds above the RSS before it, and the")
    print("median of 3 runs' time (one process per policy, one after the other).\n")
    policies = {
        f"tokens {DEFAULT_RUN_TOKENS}, no attention bound": (DEFAULT_RUN_TOKENS, 0),
        f"tokens {DEFAULT_RUN_TOKENS}, rows x seq^2 {DEFAULT_RUN_SCORES} (default)": (
            DEFAULT_RUN_TOKENS,
            DEFAULT_RUN_SCORES,
        ),
    }
    results = {
        name: _child(_TRANSIENTS, str(model_dir), str(tokens), str(scores), SENTENCE)
        for name, (tokens, scores) in policies.items()
    }
    labels = list(next(iter(results.values()))["added"])
    print("| bucket | " + " | ".join(policies) + " |")
    print("| --- |" + " --- |" * len(policies))
    for label in labels:
        cells = [
            f"{max(0, r['added'][label]) / 2**20:.0f} MiB, {r['ms'][label]:.0f} ms" for r in results.values()
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print(
        "| **largest** | "
        + " | ".join(f"**{max(r['added'].values()) / 2**20:.0f}**" for r in results.values())
        + " |"
    )


def bench_options(model_dir: Path, seconds: float) -> None:
    cores = os.cpu_count() or 1
    print(f"Machine: {machine()}. Raw in-process, arena shrink, {seconds:g} s per figure.\n")
    print("| intra-op threads | spinning | graph optimisation | load s | seq/s batch 32 | seq/s batch 1 |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [(cores, "0", "all"), (max(1, cores - 1), "0", "all"), (cores, "1", "all")]
    rows += [(cores, "0", level) for level in ("extended", "basic", "disable")]
    for threads, spin, level in rows:
        r = _child(_RAW, str(model_dir), "shrink", str(seconds), str(threads), level, spin, SENTENCE, "-")
        print(
            f"| {threads} | {'on' if spin == '1' else 'off'} | {level} | {r['load_s']:.2f} | "
            f"{r['b32']:.0f} | {r['b1']:.0f} |"
        )


# --- the graph cache ---------------------------------------------------------------------------

_OPEN = r"""
import json, sys, time
from pathlib import Path
from warmgate.models.ort_session import OrtSettings, open_session
path, cache = Path(sys.argv[1]), sys.argv[2]
import onnxruntime  # imported before timing: the figure is the session open alone
t0 = time.perf_counter()
session = open_session(path, "cpu", OrtSettings(cache_dir=Path(cache) if cache else None))
print(json.dumps({"open_s": time.perf_counter() - t0, "graph_cache": session.graph_cache}))
"""


def bench_cache(model_dir: Path, repeat: int) -> None:
    model = model_dir / "model.onnx"
    print(
        f"Machine: {machine()}. Session open of MiniLM model.onnx in a fresh process, median of {repeat}.\n"
    )
    cold, miss, hit = [], [], []
    for _ in range(repeat):
        cold.append(_child(_OPEN, str(model), "")["open_s"])
        with tempfile.TemporaryDirectory() as cache:
            first = _child(_OPEN, str(model), cache)
            second = _child(_OPEN, str(model), cache)
            assert (first["graph_cache"], second["graph_cache"]) == ("miss", "hit"), (first, second)
            miss.append(first["open_s"])
            hit.append(second["open_s"])
    print("| session open | median s |")
    print("| --- | --- |")
    print(f"| no cache (optimise every start) | {statistics.median(cold):.3f} |")
    print(f"| first start, writes the cache (miss) | {statistics.median(miss):.3f} |")
    print(f"| second start, cache hit | {statistics.median(hit):.3f} |")
    import onnxruntime as ort

    from warmgate.models.ort_session import GraphCache, OptLevel

    hashing = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        GraphCache.key(model, ort.__version__, ["CPUExecutionProvider"], OptLevel.ALL)
        hashing.append(time.perf_counter() - t0)
    print(f"| of which: SHA-256 of model.onnx + .data for the key | {statistics.median(hashing):.3f} |")


# --- served ------------------------------------------------------------------------------------


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def bench_served(model_dir: Path, seconds: int, arenas: tuple[str, ...], extra: tuple[str, ...]) -> None:
    import httpx

    print(f"Machine: {machine()}. `warmgate serve` on the exported MiniLM, default buckets (batch 1-32 x")
    print(f"seq 16-256, every one warmed), then wrk -c32 for {seconds} s on /invocations (one 17-token")
    print("sentence per request) from the same cores; peaks = the server's VmHWM, reset at READY.\n")
    print("| arena | serve flags | RSS at READY | peak through READY (load, warmup) |", end=" ")
    print("peak under load | peak RSS (VmHWM) | requests/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    body = json.dumps({"inputs": [SENTENCE]})
    for arena, flags in ((a, f) for a in arenas for f in extra):
        port = _free_port()
        cmd = [sys.executable, "-m", "warmgate", "serve", "--model-dir", str(model_dir), "--port", str(port)]
        cmd += ["--host", "127.0.0.1", "--no-fetch-default", "--ort-arena", arena, "--graph-cache", "off"]
        cmd += shlex.split(flags)
        with tempfile.TemporaryFile() as log:
            env = {**os.environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT": "600"}  # a shared, slow machine
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                url = f"http://127.0.0.1:{port}"
                deadline = time.monotonic() + 600
                while True:
                    try:
                        phase = httpx.get(url + "/readyz", timeout=5).json()["phase"]
                    except httpx.TransportError:
                        phase = "starting"
                    if phase == "ready":
                        break
                    if phase == "failed" or proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(log.read().decode()[-2000:])
                    time.sleep(0.1)
                ready, warm_peak = _rss_of(proc.pid), _vm_hwm(proc.pid)
                _reset_hwm(proc.pid)  # from here VmHWM is the load's own peak
                rps = _wrk(url + "/invocations", seconds, body)
                load_peak = _vm_hwm(proc.pid)
            finally:
                proc.terminate()
                proc.wait(30)
        shown = f"`{flags}`" if flags else "(defaults)"
        peak = max(warm_peak, load_peak)
        print(
            f"| {arena} | {shown} | {_mb(ready)} | {_mb(warm_peak)} | {_mb(load_peak)} | "
            f"**{_mb(peak)}** | {rps:.0f} |"
        )


def _reset_hwm(pid: int) -> None:
    """Set the process's VmHWM back to its current RSS (Linux ``clear_refs`` 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _mb(size: int) -> str:
    return f"{size / 2**20:.0f} MiB ({size / 1e6:.0f} MB)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _wrk(url: str, seconds: int, body: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        cmd = ["wrk", "-t1", "-c32", f"-d{seconds}s", "-s", str(script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("raw", "served", "cache", "options", "transients"), nargs="+")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: the fp32 export")
    parser.add_argument("--arena", choices=ARENAS, action="append", help="arena policies (default: all)")
    parser.add_argument(
        "--serve-args", action="append", help="served: extra `warmgate serve` flags, one string (repeatable)"
    )
    args = parser.parse_args()
    model_dir = args.model_dir or onnx_dir()
    arenas = tuple(args.arena or ARENAS)
    for what in args.what:
        if what == "raw":
            bench_raw(model_dir, args.seconds, arenas)
        elif what == "options":
            bench_options(model_dir, args.seconds)
        elif what == "cache":
            bench_cache(model_dir, args.repeat)
        elif what == "transients":
            bench_transients(model_dir)
        else:
            bench_served(model_dir, int(args.seconds), arenas, tuple(args.serve_args or [""]))
        print()


if __name__ == "__main__":
    main()
