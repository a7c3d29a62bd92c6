"""The warmup runner: drive every request shape through the real request path until its latency
is steady, so READY means steady-state speed, and spend no more runs on it than that takes.

It is handed the server's request path as a callable (it never imports ``server``). First the
prompt set (real traffic shapes and media types), then one synthetic request for every bucket the
prompt set did not cover; each group cheapest first. A shape is settled, and warming moves on, when

* its latest run lands within ``tolerance`` of the latency predicted from the shapes already
  warmed (:mod:`warmgate.warmup.predictor`): an expensive shape whose first run is already steady
  runs once; or
* its last ``window`` runs agree within ``tolerance`` of each other (two runs by default; the
  latest may also repeat any earlier run, see :func:`converged`); or
* it has run ``max_runs`` times (logged as not converged).

A prompt line's ``repeat`` is a floor on its runs. Last, when the server hands over a loopback
sender (:mod:`warmgate.warmup.loopback`), one small request for each media-type pair goes
through the replica's own HTTP listener the same way, so the first request a client sends is not
the first the HTTP stack serves. A request that fails, or the deadline, raises ``WarmupError``.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from warmgate.errors import WarmgateError, WarmupError
from warmgate.models.base import Bucket, Item, SyntheticRequest
from warmgate.warmup.predictor import SteadyPredictor, work
from warmgate.warmup.promptset import PromptLine

log = logging.getLogger("warmgate.warmup")


class Handled(Protocol):
    @property
    def item(self) -> Item: ...


RequestPath = Callable[[bytes, str, str], Awaitable[Handled]]
#: Sends one request over HTTP and returns its status (:class:`warmgate.warmup.loopback.LoopbackSender`).
HttpSend = Callable[[bytes, str, str], Awaitable[int]]
Progress = Callable[[int, int, str], None]
Clock = Callable[[], float]


class WarmupDeadline(WarmupError):
    """The warmup deadline passed before every shape was warm."""


@dataclass(frozen=True)
class WarmupPolicy:
    max_runs: int = 8
    tolerance: float = 0.10
    window: int = 2  # consecutive runs that must agree
    predict: bool = True  # accept a run that lands on the predicted steady latency


class Settled(enum.Enum):
    PREDICTION = "prediction"  # the latest run matched the latency predicted from other shapes
    AGREEMENT = "agreement"  # the last ``window`` runs agreed
    MAX_RUNS = "max_runs"  # not converged: ``max_runs`` reached


@dataclass(frozen=True)
class ShapeResult:
    name: str
    runs: int
    seconds: float  # total time spent warming this shape
    steady_s: float  # the accepted latency: the matching run, or the fastest after the first
    first_s: float  # the first (cold) run
    bucket: Bucket | None
    settled: Settled = Settled.AGREEMENT
    predicted_s: float | None = None
    over_http: bool = False
    ran: Bucket | None = None  # the rows × positions one run computed, when known


def converged(latencies: Sequence[float], policy: WarmupPolicy) -> bool:
    """True when the last ``window`` latencies lie within ``tolerance`` of each other, or (with
    the default window of two) when the latest run repeats *any* earlier run: on a shared
    machine one slow outlier between two steady runs must not cost a third and fourth run."""
    if len(latencies) < max(policy.window, 1):
        return False
    last = latencies[-policy.window :]
    if (max(last) - min(last)) <= policy.tolerance * min(last):
        return True
    latest = latencies[-1]
    return policy.window <= 2 and any(
        abs(latest - x) <= policy.tolerance * min(latest, x) for x in latencies[:-1]
    )


def matches_prediction(latency: float, predicted: float | None, policy: WarmupPolicy) -> bool:
    if not policy.predict or predicted is None:
        return False
    return abs(latency - predicted) <= policy.tolerance * predicted


def settle(
    latencies: Sequence[float], predicted: float | None, min_runs: int, policy: WarmupPolicy
) -> Settled | None:
    """Whether a shape with these run latencies is warm, and why; None: run it again."""
    if len(latencies) < min_runs:
        return None
    if matches_prediction(latencies[-1], predicted, policy):
        return Settled.PREDICTION
    if converged(latencies, policy):
        return Settled.AGREEMENT
    if len(latencies) >= max(policy.max_runs, min_runs):
        return Settled.MAX_RUNS
    return None


@dataclass(frozen=True)
class _Shape:
    name: str
    body: bytes
    content_type: str
    accept: str
    min_runs: int
    expect_status: int
    bucket: Bucket | None = None  # known in advance for synthetic requests


class _Warmer:
    def __init__(
        self,
        path: RequestPath,
        policy: WarmupPolicy,
        deadline: float,
        clock: Clock,
    ) -> None:
        self.path, self.policy = path, policy
        self.deadline, self.clock = deadline, clock
        self.predictor = SteadyPredictor()

    async def _in_process(self, shape: _Shape) -> tuple[Bucket | None, Bucket | None, bool]:
        """One run; the bucket it landed in, the rows × positions it computed (None: unknown) and
        whether the model said so (else the bucket stands in)."""
        try:
            reply = await self.path(shape.body, shape.content_type, shape.accept)
        except WarmgateError as exc:
            if exc.status == shape.expect_status:
                return shape.bucket, None, False
            raise WarmupError(
                f"warmup request {shape.name!r} failed with {exc.status}: {exc.message}"
            ) from exc
        if shape.expect_status != 200:
            raise WarmupError(f"warmup request {shape.name!r} answered 200, expected {shape.expect_status}")
        item = reply.item
        bucket = item.bucket  # the model picked it in prepare
        # What the run computed, when the model says; else its bucket, or (larger than every
        # bucket) rows × its sequence key.
        return bucket, item.runs_at or bucket or Bucket(item.size, item.seq), item.runs_at is not None

    async def warm(self, shape: _Shape, send: HttpSend | None = None) -> ShapeResult:
        latencies: list[float] = []
        bucket = shape.bucket
        ran: Bucket | None = None  # the shape one run computes; unknown over HTTP and for errors
        computed = False  # the model said what ``ran`` is (not a bucket standing in)
        predicted: float | None = None
        start = self.clock()
        while True:
            if time.monotonic() >= self.deadline:
                raise WarmupDeadline(f"warmup deadline passed while warming shape {shape.name!r}")
            t0 = self.clock()
            if send is None:
                bucket, ran, computed = await self._in_process(shape)
            else:
                status = await send(shape.body, shape.content_type, shape.accept)
                if status != shape.expect_status:
                    raise WarmupError(
                        f"warmup request {shape.name!r} over loopback HTTP answered {status}, "
                        f"expected {shape.expect_status}"
                    )
            latencies.append(self.clock() - t0)
            if ran is not None:
                predicted = self.predictor.predict(ran, computed)
            settled = settle(latencies, predicted, shape.min_runs, self.policy)
            if settled is not None:
                break
        # The matching run, or the fastest run after the cold first one.
        steady = latencies[-1] if settled is Settled.PREDICTION else min(latencies[1:] or latencies)
        if ran is not None and settled is not Settled.MAX_RUNS:
            self.predictor.add(ran, steady)
        return ShapeResult(
            name=shape.name,
            runs=len(latencies),
            seconds=self.clock() - start,
            steady_s=steady,
            first_s=latencies[0],
            bucket=bucket,
            settled=settled,
            predicted_s=predicted,
            over_http=send is not None,
            ran=ran,
        )


def _http_shapes(shapes: Sequence[_Shape]) -> list[_Shape]:
    """The smallest successful shape of each (content type, accept) pair, renamed ``http-…``."""
    smallest: dict[tuple[str, str], _Shape] = {}
    for s in shapes:
        key = (s.content_type, s.accept)
        if s.expect_status == 200 and (key not in smallest or len(s.body) < len(smallest[key].body)):
            smallest[key] = s
    return [
        _Shape(f"http-{s.name}", s.body, s.content_type, s.accept, 1, 200, s.bucket)
        for s in smallest.values()
    ]


async def run_warmup(
    path: RequestPath,
    prompts: Sequence[PromptLine],
    buckets: Sequence[Bucket],
    synthetic: Callable[[Bucket], SyntheticRequest] | None,
    policy: WarmupPolicy,
    progress: Progress = lambda done, total, current: None,
    on_shape: Callable[[ShapeResult], None] = lambda result: None,
    deadline: float = float("inf"),
    http: HttpSend | None = None,
    clock: Clock = time.perf_counter,
) -> list[ShapeResult]:
    """Warm every prompt line, then every bucket no prompt line covered (when ``synthetic``),
    smallest work first, then (with ``http``) each media-type pair once more over HTTP.

    ``deadline`` (``time.monotonic()``) is checked before every request: past it,
    ``WarmupDeadline`` names the shape being warmed. ``clock`` times the runs."""
    warmer = _Warmer(path, policy, deadline, clock)
    results: list[ShapeResult] = []
    warmed: list[_Shape] = []
    http_pairs = len({(p.content_type, p.accept) for p in prompts if p.expect_status == 200})
    total = len(prompts) + (len(buckets) if synthetic else 0) + (max(http_pairs, 1) if http else 0)

    async def warm(shape: _Shape, send: HttpSend | None = None) -> None:
        progress(len(results), total, shape.name)
        result = await warmer.warm(shape, send)
        log.info(
            "warmup shape %s: %d runs, first %.1f ms, steady %.1f ms (%s%s), bucket %s, ran %s",
            shape.name,
            result.runs,
            result.first_s * 1e3,
            result.steady_s * 1e3,
            result.settled.value,
            f", predicted {result.predicted_s * 1e3:.1f} ms" if result.predicted_s is not None else "",
            result.bucket.label() if result.bucket else "none",
            result.ran.label() if result.ran else "unknown",
            extra={
                "shape": shape.name,
                "runs": result.runs,
                "steady_ms": result.steady_s * 1e3,
                "settled": result.settled.value,
            },
        )
        results.append(result)
        warmed.append(shape)
        on_shape(result)

    # Cheapest first (the body's size stands in for the cost until a run has shown it), so the
    # predictor knows the small shapes before the expensive ones come.
    for line in sorted(prompts, key=lambda p: len(p.body)):
        await warm(
            _Shape(line.name, line.body, line.content_type, line.accept, line.repeat, line.expect_status)
        )
    if synthetic is not None:
        covered = {r.bucket for r in results if r.bucket is not None}
        missing = sorted((b for b in buckets if b not in covered), key=lambda b: (work(b), b))
        total = len(prompts) + len(missing) + (max(http_pairs, 1) if http else 0)
        for bucket in missing:
            request = synthetic(bucket)
            shape = _Shape(request.name, request.body, request.content_type, request.accept, 1, 200, bucket)
            await warm(shape)
    if http is not None:
        http_shapes = _http_shapes(warmed)
        total = len(results) + len(http_shapes)
        for shape in http_shapes:
            await warm(shape, http)
    progress(len(results), total, "")
    return results
