"""``warmgate fleet`` as a real process for end-to-end tests: start it, read it, stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.process import free_port
from warmgate.fleet.runtime_api import RuntimeApi


@dataclass
class FleetProcess:
    """A running ``python -m warmgate.fleet``: its HAProxy port, metrics port and log."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    port: int
    metrics_port: int

    @property
    def log(self) -> Path:
        return self.workdir / "fleet.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/invocations"

    @property
    def api(self) -> RuntimeApi:
        return RuntimeApi(self.workdir / "haproxy.sock")

    def text(self) -> str:
        return self.log.read_text()

    def metrics(self) -> dict[str, float]:
        """The fleet's metrics: ``name{label="v",...}`` (labels sorted) → value."""
        reply = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5.0)
        found: dict[str, float] = {}
        for family in text_string_to_metric_families(reply.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return found

    def metric(self, name: str) -> float | None:
        """One sample, or None while the metrics endpoint is not up (or lacks it)."""
        try:
            return self.metrics().get(name)
        except httpx.TransportError:
            return None

    def until(self, condition: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
        """Poll ``condition`` until it holds; fail (with the fleet's log) if the fleet exits
        or ``timeout_s`` passes."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"the fleet exited {self.proc.returncode} before {what}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout_s:g}s waiting for {what}:\n{self.text()[-6000:]}"
                )
            time.sleep(0.05)

    def in_rotation(self) -> int:
        """Servers HAProxy routes to now (0 before its socket exists)."""
        if not (self.workdir / "haproxy.sock").exists():
            return 0
        return sum(1 for s in self.api.show_stat().servers if s.in_rotation)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)


def pids(log_text: str) -> list[int]:
    """Every process the fleet logged starting (``haproxy pid N``, ``launched ... pid N``)."""
    return [int(p) for p in re.findall(r"\bpid (\d+)", log_text)]


def gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status  # a zombie has exited; only its parent's bookkeeping is left


def kill_logged(log_text: str) -> None:
    """SIGKILL every process the fleet logged starting that is still running."""
    for pid in pids(log_text):
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def fleet_process(model_dir: Path, workdir: Path, args: Sequence[str]) -> Iterator[FleetProcess]:
    """Start ``python -m warmgate.fleet --model-dir MODEL_DIR --workdir WORKDIR ARGS`` with a
    free frontend port and metrics port; kill it and everything it logged starting afterwards.
    ``workdir`` must be short: it holds HAProxy's UNIX socket."""
    port, metrics_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "warmgate.fleet", "--model-dir", str(model_dir), "--workdir", str(workdir)]
    cmd += ["--port", str(port), "--metrics-port", str(metrics_port), *args]
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "fleet.log").open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    fleet = FleetProcess(proc, workdir, port, metrics_port)
    try:
        yield fleet
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        kill_logged(fleet.text())  # nothing left behind when an assertion failed
