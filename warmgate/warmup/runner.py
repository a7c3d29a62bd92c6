"""The warmup runner: drive every request shape through the real request path until its latency
is steady, so READY means steady-state speed.

It is handed the server's request path as a callable (it never imports ``server``). First the
prompt set (real traffic shapes and media types), then one synthetic request for every bucket the
prompt set did not cover. Each shape repeats until its last three latencies agree within the
tolerance, or ``max_runs``. A request that fails, or the deadline, raises ``WarmupError``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from warmgate.errors import WarmgateError, WarmupError
from warmgate.models.base import Bucket, Item, SyntheticRequest
from warmgate.warmup.promptset import PromptLine

log = logging.getLogger("warmgate.warmup")


class Handled(Protocol):
    @property
    def item(self) -> Item: ...


RequestPath = Callable[[bytes, str, str], Awaitable[Handled]]
Progress = Callable[[int, int, str], None]


class WarmupDeadline(WarmupError):
    """The warmup deadline passed before every shape was warm."""


@dataclass(frozen=True)
class WarmupPolicy:
    max_runs: int = 8
    tolerance: float = 0.10
    window: int = 3


@dataclass(frozen=True)
class ShapeResult:
    name: str
    runs: int
    seconds: float  # total time spent warming this shape
    steady_s: float  # median of the last ``window`` runs
    first_s: float  # the first (cold) run
    bucket: Bucket | None


def converged(latencies: Sequence[float], policy: WarmupPolicy) -> bool:
    """True when the last ``window`` latencies lie within ``tolerance`` of each other."""
    if len(latencies) < policy.window:
        return False
    last = latencies[-policy.window :]
    return (max(last) - min(last)) <= policy.tolerance * min(last)


async def _warm_shape(
    path: RequestPath,
    name: str,
    body: bytes,
    content_type: str,
    accept: str,
    min_runs: int,
    policy: WarmupPolicy,
    expect_status: int,
    deadline: float,
) -> ShapeResult:
    latencies: list[float] = []
    bucket: Bucket | None = None
    start = time.perf_counter()
    while len(latencies) < max(min_runs, policy.window) or not converged(latencies, policy):
        if len(latencies) >= max(policy.max_runs, min_runs):
            break
        if time.monotonic() >= deadline:
            raise WarmupDeadline(f"warmup deadline passed while warming shape {name!r}")
        t0 = time.perf_counter()
        try:
            reply = await path(body, content_type, accept)
        except WarmgateError as exc:
            if exc.status == expect_status:
                latencies.append(time.perf_counter() - t0)
                continue
            raise WarmupError(f"warmup request {name!r} failed with {exc.status}: {exc.message}") from exc
        if expect_status != 200:
            raise WarmupError(f"warmup request {name!r} answered 200, expected {expect_status}")
        latencies.append(time.perf_counter() - t0)
        bucket = reply.item.bucket
    window = sorted(latencies[-policy.window :])
    return ShapeResult(
        name=name,
        runs=len(latencies),
        seconds=time.perf_counter() - start,
        steady_s=window[len(window) // 2],
        first_s=latencies[0],
        bucket=bucket,
    )


async def run_warmup(
    path: RequestPath,
    prompts: Sequence[PromptLine],
    buckets: Sequence[Bucket],
    synthetic: Callable[[Bucket], SyntheticRequest] | None,
    policy: WarmupPolicy,
    progress: Progress = lambda done, total, current: None,
    on_shape: Callable[[ShapeResult], None] = lambda result: None,
    deadline: float = float("inf"),
) -> list[ShapeResult]:
    """Warm every prompt line, then every bucket no prompt line covered (when ``synthetic``).

    ``deadline`` (``time.monotonic()``) is checked before every request: past it,
    ``WarmupDeadline`` names the shape being warmed."""
    results: list[ShapeResult] = []
    total = len(prompts) + (len(buckets) if synthetic else 0)

    async def warm(name: str, body: bytes, ctype: str, accept: str, runs: int, expect: int) -> None:
        progress(len(results), total, name)
        result = await _warm_shape(path, name, body, ctype, accept, runs, policy, expect, deadline)
        log.info(
            "warmup shape %s: %d runs, first %.1f ms, steady %.1f ms, bucket %s",
            name,
            result.runs,
            result.first_s * 1e3,
            result.steady_s * 1e3,
            result.bucket.label() if result.bucket else "none",
            extra={"shape": name, "runs": result.runs, "steady_ms": result.steady_s * 1e3},
        )
        results.append(result)
        on_shape(result)

    for line in prompts:
        await warm(line.name, line.body, line.content_type, line.accept, line.repeat, line.expect_status)
    if synthetic is not None:
        covered = {r.bucket for r in results if r.bucket is not None}
        missing = [b for b in buckets if b not in covered]
        total = len(prompts) + len(missing)
        for bucket in missing:
            request = synthetic(bucket)
            await warm(request.name, request.body, request.content_type, request.accept, 1, 200)
    progress(len(results), total, "")
    return results
