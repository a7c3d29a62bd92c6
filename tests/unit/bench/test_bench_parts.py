"""The benchmark's own arithmetic: hey's CSV, percentiles, the batch-size histogram delta, and
the replica's CPU per thread."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from warmgate.bench import hey
from warmgate.bench.served import Server, histogram_delta, warmup_shapes

CSV = """response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
0.0040,0.0001,0,0,0.0039,0,200,0.0010
0.0010,0,0,0,0.0010,0,200,0.5000
0.0020,0,0,0,0.0020,0,503,0.9000
0.0030,0,0,0,0.0030,0,200,1.9970
"""


def test_hey_csv_gives_rate_errors_and_percentiles() -> None:
    result = hey.parse_csv(CSV, seconds=2.0)
    assert result.requests == 4 and result.errors == 1
    assert result.rps == pytest.approx(4 / 2.0)  # last request ends at 1.997 + 0.003
    assert result.percentile(50) == 0.002
    assert result.percentile(99) == 0.004
    assert hey.parse_csv(CSV.splitlines()[0] + "\n", seconds=1.0).requests == 0


def test_hey_command_rate_limits_per_client_and_posts_the_body() -> None:
    cmd = hey.hey_command("http://x/invocations", 5, 16, b'{"inputs": ["a"]}', rate_per_client=2.5)
    assert cmd[cmd.index("-q") + 1] == "2.5" and cmd[cmd.index("-c") + 1] == "16"
    assert cmd[cmd.index("-d") + 1] == '{"inputs": ["a"]}' and cmd[-1] == "http://x/invocations"


def test_histogram_delta_counts_batches_formed_between_scrapes() -> None:
    before = {1.0: 10.0, 2.0: 10.0, 4.0: 12.0, 8.0: 12.0, 16.0: 12.0, float("inf"): 12.0}
    after = {1.0: 11.0, 2.0: 11.0, 4.0: 13.0, 8.0: 20.0, 16.0: 50.0, float("inf"): 51.0}
    assert histogram_delta(before, after) == {"1": 1, "5-8": 7, "9-16": 30, "17+": 1}


def test_warmup_shapes_are_read_from_the_replica_log() -> None:
    log = (
        "2026-11-25 22:40:34,217 INFO warmgate.warmup: warmup shape short-plain-2: 3 runs, first 11.6 ms, "
        "steady 7.8 ms (agreement), bucket b1xs16, ran b1xs7\n"
        "2026-11-25 22:40:45,945 INFO warmgate.warmup: warmup shape batch-32-with-long: 1 runs, first "
        "1560.9 ms, steady 1560.9 ms (prediction, predicted 1480.2 ms), bucket b32xs256, ran b32xs256\n"
        "2026-11-25 22:40:58,271 INFO warmgate.warmup: warmup shape http-short-intent-1: 2 runs, first "
        "12.1 ms, steady 11.4 ms (agreement), bucket b1xs16, ran b1xs5 (over HTTP)\n"
    )
    short, big, http = warmup_shapes(log)
    assert (short.name, short.runs, short.settled, short.bucket, short.ran) == (
        "short-plain-2",
        3,
        "agreement",
        "b1xs16",
        "b1xs7",
    )
    assert short.seconds == pytest.approx(0.0116 + 2 * 0.0078)
    assert (big.settled, big.runs, big.ran) == ("prediction", 1, "b32xs256")
    assert big.seconds == pytest.approx(1.5609)
    assert http.name == "http-short-intent-1" and http.ran == "b1xs5"


def test_thread_cpu_seconds_reads_each_thread_of_the_process(tmp_path: Path) -> None:
    """A process that spins in its main thread and sleeps in another: the main thread's CPU
    grows, the sleeper's stays near zero."""
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\nwhile 1: pass"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        server = Server(proc, "http://unused", tmp_path / "log", time.perf_counter())
        deadline = time.monotonic() + 30
        cpu = server.thread_cpu_seconds()
        while cpu.get(proc.pid, 0.0) < 0.3 or len(cpu) < 2:
            assert time.monotonic() < deadline, cpu
            cpu = server.thread_cpu_seconds()
        assert sum(v for k, v in cpu.items() if k != proc.pid) < 0.1
    finally:
        proc.kill()
        proc.wait()
