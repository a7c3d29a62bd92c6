"""Harness for readiness-after-READY checks with real processes: two ``warmgate serve`` replicas of
a handler model the test can stall or break, a real HAProxy probing ``/ping``, and steady load
from a separate client process (``scripts/steady_load.py``). Shared by the end-to-end tests and
``scripts/bench_reliability.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.process import Replica, free_port, replica, stop_by_file
from warmgate.fleet.haproxy import HaproxyProcess, find_haproxy
from warmgate.fleet.haproxy_config import AdminState, HaproxySettings, ServerLine, render_config
from warmgate.fleet.runtime_api import RuntimeApi

REPO = Path(__file__).resolve().parents[2]
LOAD_SCRIPT = REPO / "scripts" / "steady_load.py"

# The handler blocks while ``stall`` exists in its model directory and fails every call while
# ``fail`` exists: the test's switches, flipped from outside the process.
SWITCH_HANDLER = """
import os
import time


def model_fn(model_dir):
    return model_dir


def predict_fn(data, model_dir):
    while os.path.exists(os.path.join(model_dir, "stall")):
        time.sleep(0.005)
    if os.path.exists(os.path.join(model_dir, "fail")):
        raise RuntimeError("device lost")
    return [[2 * v for v in row] for row in data]
"""

CHECK_INTER_MS = 200
CHECK_FALL = 2
CHECK_RISE = 2
REPLICA_ARGS = (
    "--watchdog-s", "0.5",
    "--degrade-after", "3",
    "--canary-interval-s", "0.2",
    "--timeout-s", "30",
    "--drain-delay-s", "0",
)  # fmt: skip


def switch_model(root: Path) -> Path:
    (root / "code").mkdir(parents=True, exist_ok=True)
    (root / "code" / "inference.py").write_text(SWITCH_HANDLER)
    return root


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Poll ``condition`` every 5 ms; return the monotonic time it first held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s:g}s")
        time.sleep(0.005)
    return time.monotonic()


@dataclass
class Rig:
    replicas: list[Replica]
    model_dirs: list[Path]
    api: RuntimeApi
    url: str  # HAProxy's /invocations

    def status(self, index: int) -> str:
        return self.api.show_stat().server(f"s{index + 1}").status

    def sessions(self, index: int) -> int:
        return self.api.show_stat().server(f"s{index + 1}").total_sessions

    def ping(self, index: int) -> int:
        return self.replicas[index].get("/ping", timeout=2).status_code


@contextmanager
def rig(tmp_path: Path, replica_args: tuple[str, ...] = REPLICA_ARGS) -> Iterator[Rig]:
    """Two READY replicas behind HAProxy (``option httpchk GET /ping``), both UP."""
    with ExitStack() as stack:
        dirs = [switch_model(tmp_path / f"model{i}") for i in (1, 2)]
        replicas = [stack.enter_context(replica(d, tmp_path, *replica_args)) for d in dirs]
        for r in replicas:
            r.wait_for("/ping", 200)
        port = free_port()
        settings = HaproxySettings(
            port=port,
            socket=tmp_path / "haproxy.sock",
            check_inter_ms=CHECK_INTER_MS,
            check_fall=CHECK_FALL,
            check_rise=CHECK_RISE,
            server_timeout_ms=60_000,
            balance="roundrobin",
        )
        lines = [
            ServerLine(f"s{i + 1}", "127.0.0.1", int(r.url.rsplit(":", 1)[1]), AdminState.READY)
            for i, r in enumerate(replicas)
        ]
        config = tmp_path / "haproxy.cfg"
        config.write_text(render_config(settings, lines))
        proxy = HaproxyProcess(find_haproxy(), config, settings.socket, tmp_path / "haproxy.log")
        api = proxy.start()
        stack.callback(proxy.stop, 2.0)
        ready = Rig(replicas, dirs, api, f"http://127.0.0.1:{port}/invocations")
        for i in range(2):
            wait_until(lambda i=i: ready.status(i).startswith("UP"), 10, f"s{i + 1} UP in HAProxy")
        yield ready


@dataclass(frozen=True)
class Outcome:
    start: float
    end: float
    status: int
    error: str
    retry_after: str | None

    @property
    def ok(self) -> bool:
        return self.status == 200


@contextmanager
def steady_load(url: str, tmp_path: Path, rate: float, *extra: str) -> Iterator[Callable[[], list[Outcome]]]:
    """Open-loop load from a separate process while the block runs; yields a reader of the
    outcomes so far. On exit the client is stopped and every open request is waited for."""
    out, stop = tmp_path / f"load-{time.monotonic_ns()}.jsonl", tmp_path / f"stop-{time.monotonic_ns()}"
    cmd = [sys.executable, str(LOAD_SCRIPT), url, "--rate", str(rate), "--out", str(out)]
    proc = subprocess.Popen([*cmd, "--stop-file", str(stop), *extra])

    def read() -> list[Outcome]:
        if not out.exists():
            return []
        lines = [ln for ln in out.read_text().splitlines() if ln.endswith("}")]
        return [Outcome(**json.loads(ln)) for ln in lines]

    try:
        yield read
    finally:
        stop_by_file(proc, stop, 90)
