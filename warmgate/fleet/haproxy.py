"""Run HAProxy in the foreground on a rendered configuration; stop it gracefully.

``start`` checks the file with ``haproxy -c`` first (so a bad config is reported with
HAProxy's own words) and returns once the stats socket answers.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from warmgate.errors import WarmgateError
from warmgate.fleet.runtime_api import RuntimeApi

DEFAULT_BINARY = "/usr/sbin/haproxy"


class HaproxyError(WarmgateError):
    """HAProxy is missing, rejected its configuration, or did not start."""

    code = "haproxy_failed"


def find_haproxy(explicit: str | None = None) -> str:
    """The HAProxy binary: ``explicit``, else ``haproxy`` on PATH, else /usr/sbin/haproxy."""
    candidate = explicit or shutil.which("haproxy") or DEFAULT_BINARY
    if not Path(candidate).is_file():
        raise HaproxyError(
            f"HAProxy not found at {candidate!r}: install it (`make system-deps`, or "
            "`apt-get install haproxy`) or pass its path"
        )
    return candidate


class HaproxyProcess:
    """One HAProxy process over ``config_path`` whose admin socket is ``socket_path``."""

    def __init__(self, binary: str, config_path: Path, socket_path: Path, log_path: Path) -> None:
        self.binary = binary
        self.config_path = config_path
        self.socket_path = socket_path
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def check(self) -> None:
        """Validate the configuration with ``haproxy -c``."""
        result = subprocess.run(
            [self.binary, "-c", "-q", "-f", str(self.config_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise HaproxyError(
                f"HAProxy rejected {self.config_path}: {(result.stderr or result.stdout).strip()}"
            )

    def start(self, timeout_s: float = 10.0) -> RuntimeApi:
        """Check, launch (``-db``: foreground) and wait for the stats socket; return its client."""
        self.check()
        self.socket_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-db", "-f", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        api = RuntimeApi(self.socket_path)
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                raise HaproxyError(f"HAProxy exited {self._proc.returncode} at start: {self._tail()}")
            if self.socket_path.exists():
                try:
                    api.command("show info")
                    return api
                except OSError:
                    pass  # the socket file exists before it accepts
            if time.monotonic() > deadline:
                self.stop(0.0)
                raise HaproxyError(f"HAProxy's stats socket did not answer in {timeout_s}s: {self._tail()}")
            time.sleep(0.02)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Soft stop (SIGUSR1: finish open connections), then SIGKILL past ``timeout_s``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGUSR1)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"
