"""A real ``warmgate serve`` process for the benchmark: start it, time its way to READY, read
its peak RSS and its batch-size histogram."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from warmgate.errors import WarmgateError

BATCH_METRIC = "warmgate_batch_size_rows_bucket"
_SHAPE_LINE = re.compile(
    r"warmup shape (\S+): (\d+) runs, first ([\d.]+) ms, steady ([\d.]+) ms \((\w+).*?\), "
    r"bucket (\S+), ran (\S+)"
)


@dataclass(frozen=True)
class WarmedShape:
    """One line of the replica's warmup log."""

    name: str
    runs: int
    first_s: float
    steady_s: float
    settled: str
    bucket: str  # label, or "none"
    ran: str  # label, or "unknown"

    @property
    def seconds(self) -> float:
        """About what warming it cost: the first run and the others at the steady latency."""
        return self.first_s + (self.runs - 1) * self.steady_s


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    started: float  # time.perf_counter() at process start
    ready_s: float = 0.0  # process start → first /ping 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def phase_seconds(self, source: str, target: str) -> float | None:
        """Seconds the replica spent in ``source`` before it went to ``target`` (from its log)."""
        m = re.search(rf"phase {source} -> {target} after ([\d.]+)s", self.log_text())
        return float(m.group(1)) if m else None

    def warmup_summary(self) -> str:
        """Runs and time per warmed shape, from the replica's log and its warmup metric."""
        shapes = re.findall(r"warmup shape (\S+): (\d+) runs, .*?\((\w+)", self.log_text())
        text = httpx.get(self.url + "/metrics", timeout=10).text
        seconds = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r'^warmgate_warmup_seconds{shape="([^"]+)"} (\S+)$', text, re.M)
        }
        settled: dict[str, int] = {}
        for _, _, how in shapes:
            settled[how] = settled.get(how, 0) + 1
        costly = sorted(seconds.items(), key=lambda kv: -kv[1])[:4]
        return (
            f"{len(shapes)} shapes, {sum(int(r) for _, r, _ in shapes)} runs, "
            f"{sum(seconds.values()):.2f} s; settled by "
            + ", ".join(f"{k} {v}" for k, v in sorted(settled.items()))
            + "; costliest: "
            + ", ".join(f"{name} {secs:.2f} s" for name, secs in costly)
        )

    def warmup_shapes(self) -> list[WarmedShape]:
        """Every shape the replica warmed, from its log, in the order it ran them."""
        return warmup_shapes(self.log_text())

    def peak_rss_bytes(self) -> int:
        """The process's peak resident set (VmHWM), Linux only."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise WarmgateError(f"no VmHWM for pid {self.proc.pid}")

    def thread_cpu_seconds(self) -> dict[int, float]:
        """CPU seconds (user + system) of each of the process's threads by thread id, Linux only;
        the main thread (id = pid) runs the event loop."""
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[int, float] = {}
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # the thread ended
                continue
            out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return out

    def batch_histogram(self) -> dict[float, float]:
        """Cumulative counts of ``warmgate_batch_size_rows`` by upper bound (``le``)."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        out: dict[float, float] = {}
        for m in re.finditer(rf'^{BATCH_METRIC}{{le="([^"]+)"}} (\S+)$', text, re.M):
            out[float(m.group(1))] = float(m.group(2))
        return out


def warmup_shapes(log: str) -> list[WarmedShape]:
    """The ``warmup shape …`` lines of a replica's log (warmgate.warmup.runner writes them)."""
    out = []
    for m in _SHAPE_LINE.finditer(log):
        name, runs, first, steady, settled, bucket, ran = m.groups()
        out.append(
            WarmedShape(name, int(runs), float(first) / 1e3, float(steady) / 1e3, settled, bucket, ran)
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(
    model_dir: Path, workdir: Path, args: Sequence[str], timeout_s: float = 600, checkout: Path | None = None
) -> Iterator[Server]:
    """``warmgate serve`` on a free loopback port, waited on until ``/ping`` is 200. With
    ``checkout``, the server runs that directory's ``warmgate`` package (another commit's code:
    ``python -m`` imports from its working directory first)."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "warmgate", "serve", "--model-dir", str(model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--no-fetch-default", *args]
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=checkout)
    server = Server(proc, f"http://127.0.0.1:{port}", log, started)
    try:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    if client.get(server.url + "/ping").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise WarmgateError(f"the server never became ready: {server.log_text()[-2000:]}")
                time.sleep(0.01)
        server.ready_s = time.perf_counter() - started
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def histogram_delta(before: dict[float, float], after: dict[float, float]) -> dict[str, int]:
    """Batches formed between two scrapes, by row range (``"3-4"``: more than 2, at most 4)."""
    out: dict[str, int] = {}
    lower = 0.0
    prev_count = 0.0
    for bound in sorted(after):
        cumulative = after[bound] - before.get(bound, 0.0)
        count = round(cumulative - prev_count)
        prev_count = cumulative
        if count:
            out[_range_label(int(lower) + 1, bound)] = count
        lower = bound
    return out


def _range_label(low: int, bound: float) -> str:
    if bound == float("inf"):
        return f"{low}+"
    return f"{int(bound)}" if low >= bound else f"{low}-{int(bound)}"
