"""Start real ``warmgate serve`` processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def stop_by_file(proc: subprocess.Popen[bytes], stop: Path, timeout_s: float) -> None:
    """Ask a load generator to stop by creating its stop file, wait ``timeout_s`` for it to
    finish its open requests, else kill it."""
    stop.touch()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def get(self, path: str, timeout: float = 5.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def wait_for(self, path: str, status: int, timeout_s: float = 90.0) -> httpx.Response:
        """Poll until ``path`` answers ``status`` (connection errors are retried)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                response = self.get(path)
                if response.status_code == status:
                    return response
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never answered {status}: {self.log.read_text()[-3000:]}")
            time.sleep(0.02)


@contextmanager
def replica(
    model_dir: Path, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[Replica]:
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "warmgate", "serve", "--model-dir", str(model_dir), "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--no-fetch-default", *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        yield Replica(proc, f"http://127.0.0.1:{port}", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
