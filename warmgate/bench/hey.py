"""The load generator: ``hey`` (Debian package ``hey``), a separate process, its per-request CSV
parsed here so every percentile is computed the same way."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass

from warmgate.errors import ConfigError


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int  # non-2xx responses
    latencies_s: tuple[float, ...]  # sorted

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, pct: float) -> float:
        if not self.latencies_s:
            return float("nan")
        index = min(len(self.latencies_s) - 1, max(0, round(pct / 100 * len(self.latencies_s)) - 1))
        return self.latencies_s[index]


def require_hey() -> str:
    path = shutil.which("hey")
    if path is None:
        raise ConfigError("warmgate bench needs the load generator `hey`: apt-get install hey")
    return path


def hey_command(
    url: str,
    seconds: float,
    clients: int,
    body: bytes | None = None,
    content_type: str = "application/json",
    rate_per_client: float | None = None,
) -> list[str]:
    cmd = [require_hey(), "-z", f"{seconds:g}s", "-c", str(clients), "-o", "csv", "-t", "60"]
    if rate_per_client is not None:
        cmd += ["-q", f"{rate_per_client:g}"]
    if body is not None:
        cmd += ["-m", "POST", "-T", content_type, "-d", body.decode()]
    return [*cmd, url]


def parse_csv(text: str, seconds: float) -> LoadResult:
    """hey's CSV: one row per request (``response-time`` seconds, ``status-code``, ``offset``)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    latencies = sorted(float(r["response-time"]) for r in rows)
    errors = sum(1 for r in rows if not r["status-code"].startswith("2"))
    span = max((float(r["offset"]) + float(r["response-time"]) for r in rows), default=seconds)
    return LoadResult(len(rows), max(span, 1e-9), errors, tuple(latencies))


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str], seconds: float) -> LoadResult:
    out, err = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"hey exited {proc.returncode}: {err.strip()[-500:]}")
    return parse_csv(out, seconds)


def run(cmd: list[str], seconds: float) -> LoadResult:
    return finish(start(cmd), seconds)
