"""One replica process: ``python -m warmgate serve`` on its own port, logging to its own file.

The fleet never imports the server: it launches it, talks HTTP to it, and stops it with
SIGTERM (the replica drains: ``/ping`` 503 at once, keeps serving for ``--drain-delay-s``,
finishes in-flight work, exits 0) or SIGKILL.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
# Replica ports come from below Linux's default ephemeral range (32768-60999): a port picked
# there and handed to a process that binds it a second later can meanwhile be taken as the
# local end of some outgoing connection (health checks, clients), failing the bind.
PORT_RANGE = (20000, 32768)
# Not the module-level generator: a test or library that seeds it would make every fleet pick
# the same ports in the same order.
_PORTS = random.SystemRandom()


def pick_port(attempts: int = 64, taken: Collection[int] = ()) -> int:
    """A port free to listen on now, preferably outside the ephemeral range, and none of
    ``taken`` (ports handed to processes that may not have bound them yet)."""
    for _ in range(attempts):
        port = _PORTS.randrange(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ReplicaSpec:
    """How to launch a replica: the model, the serve flags, the environment."""

    model_dir: Path
    args: tuple[str, ...] = ()  # extra `warmgate serve` flags
    drain_delay_s: float = 1.0
    env: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable

    def command(self, port: int) -> list[str]:
        return [
            self.python,
            "-m",
            "warmgate",
            "serve",
            "--model-dir",
            str(self.model_dir),
            "--port",
            str(port),
            "--host",
            HOST,
            "--no-fetch-default",
            "--drain-delay-s",
            str(self.drain_delay_s),
            *self.args,
        ]


class ReplicaProcess:
    """A launched replica. Its log file is ``log_dir/<replica_id>.log``."""

    def __init__(self, replica_id: str, spec: ReplicaSpec, port: int, log_dir: Path) -> None:
        self.replica_id = replica_id
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = log_dir / f"{replica_id}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                spec.command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **spec.env},
            )

    @property
    def pid(self) -> int:
        return self._proc.pid

    def exit_code(self) -> int | None:
        """None while running."""
        return self._proc.poll()

    def terminate(self) -> None:
        """SIGTERM: the replica drains and exits 0."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s``; return the exit code, or None if still running."""
        try:
            return self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
