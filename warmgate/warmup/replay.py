"""``warmgate replay``: send a prompt set to a live endpoint and report latency per shape.

Every line is sent ``repeat * line.repeat`` times by ``concurrency`` workers sharing one
``httpx.AsyncClient``. A request *fails* when the status differs from the line's
``expect_status`` or the transport fails (refused, reset, timed out). Percentiles are over the
requests that succeeded; failures are counted apart, so a fast 500 never flatters a shape.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
import numpy as np

from warmgate.errors import ConfigError
from warmgate.warmup.promptset import PromptLine

MAX_ERROR_SAMPLES = 20
_BODY_EXCERPT = 200


@dataclass(frozen=True)
class RequestResult:
    """One request as it went: ``status`` is None after a transport error."""

    name: str
    status: int | None
    latency_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ShapeReport:
    """Counts and latency percentiles (ms, successful requests only) for one prompt line."""

    name: str
    count: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    def over_budget(self, p99_budget_ms: float | None) -> bool:
        return p99_budget_ms is not None and self.p99_ms is not None and self.p99_ms > p99_budget_ms


@dataclass(frozen=True)
class ReplayReport:
    url: str
    requests: int
    errors: int
    wall_s: float
    shapes: tuple[ShapeReport, ...]
    error_samples: tuple[str, ...]
    p99_budget_ms: float | None = None

    @property
    def over_budget(self) -> tuple[ShapeReport, ...]:
        return tuple(s for s in self.shapes if s.over_budget(self.p99_budget_ms))

    @property
    def ok(self) -> bool:
        """No failed request and no shape past the p99 budget: the exit status of the CLI."""
        return self.errors == 0 and not self.over_budget

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ok": self.ok,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 6),
            "throughput_rps": round(self.requests / self.wall_s, 3) if self.wall_s > 0 else None,
            "p99_budget_ms": self.p99_budget_ms,
            "over_budget": [s.name for s in self.over_budget],
            "shapes": [
                {
                    "name": s.name,
                    "count": s.count,
                    "errors": s.errors,
                    "p50_ms": _round(s.p50_ms),
                    "p95_ms": _round(s.p95_ms),
                    "p99_ms": _round(s.p99_ms),
                    "max_ms": _round(s.max_ms),
                }
                for s in self.shapes
            ],
            "error_samples": list(self.error_samples),
        }


class Progress:
    """A dependency-free one-line progress bar (carriage return), redrawn once per percent."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self._total, self._stream, self._width = max(total, 1), stream, width
        self._done = self._errors = 0
        self._drawn = -1

    def advance(self, ok: bool) -> None:
        self._done += 1
        self._errors += 0 if ok else 1
        percent = self._done * 100 // self._total
        if percent != self._drawn:
            self._drawn = percent
            filled = self._width * self._done // self._total
            bar = "#" * filled + "-" * (self._width - filled)
            self._stream.write(
                f"\rreplay [{bar}] {self._done}/{self._total} ({percent}%) errors {self._errors}"
            )
            self._stream.flush()

    def close(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def endpoint(url: str, path: str) -> str:
    """``http://host:8080/`` + ``/invocations`` → ``http://host:8080/invocations``."""
    return url.rstrip("/") + "/" + path.lstrip("/") if path else url


def schedule(lines: Sequence[PromptLine], repeat: int) -> list[PromptLine]:
    """The order requests are sent in: the whole set ``repeat`` times, each line ``line.repeat``
    times in a row."""
    return [line for _ in range(repeat) for line in lines for _ in range(line.repeat)]


async def replay(
    lines: Sequence[PromptLine],
    url: str,
    *,
    concurrency: int = 4,
    repeat: int = 1,
    timeout_s: float = 60.0,
    progress: TextIO | None = None,
) -> list[RequestResult]:
    """Send the set to ``url`` (the full endpoint URL) and return one result per request."""
    if concurrency < 1 or repeat < 1:
        raise ConfigError(f"concurrency and repeat must be >= 1, got {concurrency} and {repeat}")
    if timeout_s <= 0:
        raise ConfigError(f"timeout must be > 0 seconds, got {timeout_s}")
    queue: asyncio.Queue[PromptLine] = asyncio.Queue()
    for line in schedule(lines, repeat):
        queue.put_nowait(line)
    bar = Progress(queue.qsize(), progress) if progress is not None else None
    results: list[RequestResult] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            line = queue.get_nowait()
            result = await _send(client, url, line)
            results.append(result)
            if bar is not None:
                bar.advance(result.ok)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    if bar is not None:
        bar.close()
    return results


def run_replay(
    lines: Sequence[PromptLine],
    url: str,
    *,
    concurrency: int = 4,
    repeat: int = 1,
    timeout_s: float = 60.0,
    p99_budget_ms: float | None = None,
    progress: TextIO | None = None,
) -> ReplayReport:
    """Replay synchronously (own event loop) and summarise."""
    start = time.perf_counter()
    results = asyncio.run(
        replay(
            lines,
            url,
            concurrency=concurrency,
            repeat=repeat,
            timeout_s=timeout_s,
            progress=progress,
        )
    )
    wall = time.perf_counter() - start
    return summarize(lines, results, url=url, wall_s=wall, p99_budget_ms=p99_budget_ms)


def summarize(
    lines: Sequence[PromptLine],
    results: Sequence[RequestResult],
    *,
    url: str,
    wall_s: float,
    p99_budget_ms: float | None = None,
) -> ReplayReport:
    """Per-shape counts and percentiles, in the order of the prompt set."""
    by_name: dict[str, list[RequestResult]] = {line.name: [] for line in lines}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    shapes = tuple(_shape_report(name, rs) for name, rs in by_name.items())
    failures = [r.error for r in results if r.error is not None]
    return ReplayReport(
        url=url,
        requests=len(results),
        errors=len(failures),
        wall_s=wall_s,
        shapes=shapes,
        error_samples=tuple(failures[:MAX_ERROR_SAMPLES]),
        p99_budget_ms=p99_budget_ms,
    )


def format_table(report: ReplayReport) -> str:
    """The human-readable report: one row per shape, then a summary line."""
    width = max([len("shape"), *(len(s.name) for s in report.shapes)])
    header = f"{'shape':<{width}}  {'count':>6}  {'errors':>6}  " + "  ".join(
        f"{c:>9}" for c in ("p50 ms", "p95 ms", "p99 ms")
    )
    rows = [header, "-" * len(header)]
    for s in report.shapes:
        flag = "  over budget" if s.over_budget(report.p99_budget_ms) else ""
        rows.append(
            f"{s.name:<{width}}  {s.count:>6}  {s.errors:>6}  {_ms(s.p50_ms):>9}  "
            f"{_ms(s.p95_ms):>9}  {_ms(s.p99_ms):>9}{flag}"
        )
    rate = report.requests / report.wall_s if report.wall_s > 0 else 0.0
    rows.append(
        f"{report.requests} requests, {report.errors} errors in {report.wall_s:.2f} s "
        f"({rate:.1f} req/s) against {report.url}"
    )
    if report.p99_budget_ms is not None:
        broken = ", ".join(s.name for s in report.over_budget) or "none"
        rows.append(f"p99 budget {report.p99_budget_ms:g} ms; shapes over it: {broken}")
    rows.extend(f"error: {e}" for e in report.error_samples)
    if report.errors > len(report.error_samples):
        rows.append(f"... and {report.errors - len(report.error_samples)} more errors")
    return "\n".join(rows)


async def _send(client: httpx.AsyncClient, url: str, line: PromptLine) -> RequestResult:
    headers = {"content-type": line.content_type, "accept": line.accept}
    start = time.perf_counter()
    try:
        response = await client.post(url, content=line.body, headers=headers)
    except httpx.TransportError as e:
        latency = time.perf_counter() - start
        return RequestResult(line.name, None, latency, f"{line.name}: {type(e).__name__}: {e}")
    latency = time.perf_counter() - start
    if response.status_code != line.expect_status:
        excerpt = response.text[:_BODY_EXCERPT]
        error = f"{line.name}: HTTP {response.status_code}, expected {line.expect_status}: {excerpt}"
        return RequestResult(line.name, response.status_code, latency, error)
    return RequestResult(line.name, response.status_code, latency)


def _shape_report(name: str, results: Sequence[RequestResult]) -> ShapeReport:
    good = [r.latency_s * 1000.0 for r in results if r.ok]
    errors = len(results) - len(good)
    if not good:
        return ShapeReport(name, len(results), errors, None, None, None, None)
    p50, p95, p99 = (float(v) for v in np.percentile(good, [50, 95, 99]))
    return ShapeReport(name, len(results), errors, p50, p95, p99, max(good))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _round(value: float | None) -> float | None:
    """Milliseconds to the microsecond: enough for any budget, readable in JSON."""
    return None if value is None else round(value, 3)
