"""The warmup runner: drive every request shape through the real request path until its latency
is steady, so READY means steady-state speed, and spend no more runs on it than that takes.

It is handed the server's request path as a callable (it never imports ``server``). Every
prompt line (real traffic shapes and media types) runs, and one synthetic request for every
bucket no prompt line covers. When the server also hands over ``shape_of`` (decode and prepare
without inference), the runner knows before running anything which bucket each line lands in
and what one run of it computes, so it runs *all* shapes in one order, least work first, and
the expensive shapes come last, when the predictor has seen their neighbours; without it, the
prompt lines run first (smallest body first), then the buckets they left uncovered.

Warming only ever makes runs *faster* (lazy initialisation, first allocations, cold caches), so
a shape is settled, and warming moves on, when

* its latest run is no slower than ``1 + tolerance`` × the latency predicted from the shapes
  already warmed (:mod:`warmgate.warmup.predictor`): an expensive shape whose first run is
  already steady runs once; or
* its latest run is no faster than ``1 - tolerance`` × its fastest earlier run (two runs by
  default, :func:`converged`): nothing is left to warm; a run slowed by a busy machine is noise
  on top of a run that was already steady, not a reason for a third; or
* it has run ``max_runs`` times (logged as not converged).

A prompt line's ``repeat`` is a floor on its runs. Last, when the server hands over a loopback
sender (:mod:`warmgate.warmup.loopback`), one small request for each media-type pair goes
through the replica's own HTTP listener the same way, so the first request a client sends is not
the first the HTTP stack serves, and the last thing the replica ran before READY went through
the whole stack. A request that fails, or the deadline, raises ``WarmupError``.
"""

from __future__ import annotations

import asyncio
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


@dataclass(frozen=True)
class Planned:
    """Where a request will land before it runs: its bucket and the rows × positions one run of
    it computes (None: the model does not say)."""

    bucket: Bucket | None
    ran: Bucket | None = None


#: Decodes and prepares a request without running it (raises ``WarmgateError`` like the path).
ShapeOf = Callable[[bytes, str, str], Planned]
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
    """True when each of the last ``window - 1`` runs is no faster than ``1 - tolerance`` × the
    fastest run before it: the runs have stopped getting faster. One-sided on purpose: warming
    only removes time, so a later run that is *slower* (a busy machine) shows that the earlier
    one was already steady, not that the shape needs another run."""
    window = max(policy.window, 2)
    if len(latencies) < window:
        return False
    return all(
        latencies[i] >= (1 - policy.tolerance) * min(latencies[:i])
        for i in range(len(latencies) - window + 1, len(latencies))
    )


def matches_prediction(latency: float, predicted: float | None, policy: WarmupPolicy) -> bool:
    """The run is no slower than ``1 + tolerance`` × the predicted steady latency (a run can be
    faster than a prediction, never warmer than steady)."""
    if not policy.predict or predicted is None:
        return False
    return latency <= (1 + policy.tolerance) * predicted


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
    bucket: Bucket | None = None  # known in advance for synthetic requests, or planned
    ran: Bucket | None = None  # what one run computes, when planned (``shape_of``)
    synthetic: bool = False

    @property
    def origin(self) -> str:
        """Synthetic requests fill every row; prompt lines pad real texts (see the predictor)."""
        return "synthetic" if self.synthetic else "traffic"

    def planned_work(self) -> int | None:
        shape = self.ran or self.bucket
        return None if shape is None else work(shape)


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
        # The shape one run computes; over HTTP only what was planned, and never for errors.
        ran: Bucket | None = shape.ran if send is not None else None
        computed = ran is not None  # the model said what ``ran`` is (not a bucket standing in)
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
                predicted = self.predictor.predict(ran, computed, shape.origin)
            settled = settle(latencies, predicted, shape.min_runs, self.policy)
            if settled is not None:
                break
        # Warming only removes time: the fastest run is the steady one (the cold first run of a
        # shape that never settled is left out).
        steady = min(latencies) if settled is not Settled.MAX_RUNS else min(latencies[1:] or latencies)
        if ran is not None and settled is not Settled.MAX_RUNS and send is None:
            self.predictor.add(ran, steady, shape.origin)  # over HTTP a run also pays the HTTP stack
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
        _Shape(f"http-{s.name}", s.body, s.content_type, s.accept, 1, 200, s.bucket, s.ran)
        for s in smallest.values()
    ]


async def _in_lanes(shapes: Sequence[_Shape], lanes: int, warm: Callable[[_Shape], Awaitable[None]]) -> None:
    """Warm ``shapes`` in their order, up to ``lanes`` at once. A lane takes the first shape left
    whose sequence bucket no running shape shares (a shape of unknown bucket runs alone): the
    batcher groups requests by that key, and two shapes merged into one run would each time
    the other's rows."""
    left = list(shapes)
    running: list[_Shape] = []
    changed = asyncio.Condition()

    def clashes(shape: _Shape) -> bool:
        seqs = {r.bucket.seq if r.bucket else None for r in running}
        return bool(running) and (shape.bucket is None or None in seqs or shape.bucket.seq in seqs)

    async def lane() -> None:
        while left:
            async with changed:
                await changed.wait_for(lambda: not left or any(not clashes(s) for s in left))
                if not left:
                    return
                shape = next(s for s in left if not clashes(s))
                left.remove(shape)
                running.append(shape)
            try:
                await warm(shape)
            finally:
                async with changed:
                    running.remove(shape)
                    changed.notify_all()

    tasks = [asyncio.ensure_future(lane()) for _ in range(max(1, lanes))]
    try:
        await asyncio.gather(*tasks)
    finally:  # a lane that failed (or a deadline) stops the others too
        for task in tasks:
            task.cancel()


def _plan(line: PromptLine, shape_of: ShapeOf | None) -> _Shape:
    """The line as a shape, with where it lands when ``shape_of`` can tell before it runs."""
    shape = _Shape(line.name, line.body, line.content_type, line.accept, line.repeat, line.expect_status)
    if shape_of is None or line.expect_status != 200:
        return shape
    try:
        planned = shape_of(line.body, line.content_type, line.accept)
    except WarmgateError:  # the run itself reports it, with the line's name
        return shape
    return _Shape(
        shape.name, shape.body, shape.content_type, shape.accept, shape.min_runs,
        shape.expect_status, planned.bucket, planned.ran,
    )  # fmt: skip


def _order(shape: _Shape) -> tuple[int, int, int, int]:
    """Shapes of unknown cost first (smallest body first), then least work first; among equal
    work, longer sequences last (attention), prompt lines before synthetic requests."""
    planned = shape.planned_work()
    if planned is None:
        return (0, len(shape.body), 0, 0)
    seq = (shape.ran or shape.bucket or Bucket(0)).seq
    return (1, planned, seq, int(shape.synthetic))


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
    shape_of: ShapeOf | None = None,
    lanes: int = 1,
) -> list[ShapeResult]:
    """Warm every prompt line and every bucket no prompt line covered (when ``synthetic``),
    least work first (see the module's docstring), then (with ``http``) each media-type pair
    once more over HTTP. ``lanes``: shapes warmed at once (the model's instances), never two of
    one sequence bucket, which the batcher could merge into one run.

    ``deadline`` (``time.monotonic()``) is checked before every request: past it,
    ``WarmupDeadline`` names the shape being warmed. ``clock`` times the runs."""
    warmer = _Warmer(path, policy, deadline, clock)
    results: list[ShapeResult] = []
    warmed: list[_Shape] = []
    http_pairs = len({(p.content_type, p.accept) for p in prompts if p.expect_status == 200})
    http_total = max(http_pairs, 1) if http else 0

    def synthetic_shape(bucket: Bucket) -> _Shape:
        assert synthetic is not None
        request = synthetic(bucket)
        return _Shape(
            request.name, request.body, request.content_type, request.accept, 1, 200, bucket, synthetic=True
        )

    async def warm(shape: _Shape, total: int, send: HttpSend | None = None) -> None:
        progress(len(results), total, shape.name)
        result = await warmer.warm(shape, send)
        log.info(
            "warmup shape %s: %d runs, first %.1f ms, steady %.1f ms (%s%s), bucket %s, ran %s%s",
            shape.name,
            result.runs,
            result.first_s * 1e3,
            result.steady_s * 1e3,
            result.settled.value,
            f", predicted {result.predicted_s * 1e3:.1f} ms" if result.predicted_s is not None else "",
            result.bucket.label() if result.bucket else "none",
            result.ran.label() if result.ran else "unknown",
            " (over HTTP)" if result.over_http else "",
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

    shapes = [_plan(line, shape_of) for line in prompts]
    if synthetic is not None and shape_of is not None:
        planned = {s.bucket for s in shapes if s.bucket is not None}
        shapes += [synthetic_shape(b) for b in buckets if b not in planned]
    shapes.sort(key=_order)  # stable: equal keys keep the prompt set's order
    total = len(shapes) + http_total
    await _in_lanes(shapes, lanes, lambda shape: warm(shape, total))
    if synthetic is not None:
        # Without a plan (or where one was wrong): every bucket the runs did not land in.
        covered = {r.bucket for r in results if r.bucket is not None}
        missing = sorted((b for b in buckets if b not in covered), key=lambda b: (work(b), b))
        total = len(results) + len(missing) + http_total
        for bucket in missing:
            await warm(synthetic_shape(bucket), total)
    if http is not None:
        http_shapes = _http_shapes(warmed)
        total = len(results) + len(http_shapes)
        for shape in http_shapes:
            await warm(shape, total, http)
    progress(len(results), len(results), "")
    return results
