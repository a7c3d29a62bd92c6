"""The warmup runner's own logic: convergence, coverage, failure and deadline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest

from warmgate.errors import BadRequest, WarmupError
from warmgate.models.base import Bucket, Item, SyntheticRequest
from warmgate.models.buckets import BucketPlan
from warmgate.warmup.promptset import PromptLine
from warmgate.warmup.runner import Planned, WarmupDeadline, WarmupPolicy, converged, run_warmup

PLAN = BucketPlan((1, 2, 4), (16, 32))
BUCKETS = PLAN.buckets()


@dataclass(frozen=True)
class Reply:
    item: Item


class CountingPath:
    """A request path that sizes items from the body: b'<rows>x<seq>' (and counts calls); like a
    model, it puts the padded bucket on the item."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    async def __call__(self, body: bytes, content_type: str, accept: str) -> Reply:
        self.calls.append(body)
        if body == b"bad":
            raise BadRequest("bad body")
        rows, seq = (int(x) for x in body.split(b"x"))
        return Reply(Item(key=seq, size=rows, payload=None, bucket=PLAN.select(rows, seq)))


def synthetic(bucket: Bucket) -> SyntheticRequest:
    return SyntheticRequest(
        f"synthetic-{bucket.label()}", f"{bucket.batch}x{bucket.seq}".encode(), "text/plain"
    )


def test_converged_when_the_last_window_of_runs_stopped_getting_faster() -> None:
    policy = WarmupPolicy(max_runs=10, tolerance=0.1, window=3)
    assert not converged([1.0, 1.0], policy)  # a window of three needs three runs
    assert converged([5.0, 1.0, 1.05, 1.0], policy)
    assert not converged([5.0, 2.0, 1.0], policy)  # still getting faster
    assert not converged([5.0, 1.0, 0.5], policy)  # the latest is twice as fast: not steady yet
    assert converged([1.0, 1.5, 1.0], policy)  # a slow run between steady ones
    assert converged([5.0, 1.0, 1.05], WarmupPolicy(tolerance=0.1))  # default window: two runs
    assert not converged([5.0, 1.0], WarmupPolicy(tolerance=0.1))


def test_prompts_then_only_uncovered_buckets() -> None:
    path = CountingPath()
    prompts = [PromptLine("two-short", b"2x10", "text/plain", repeat=4)]
    progress: list[tuple[int, int, str]] = []
    results = asyncio.run(
        run_warmup(
            path, prompts, BUCKETS, synthetic, WarmupPolicy(), lambda d, t, c: progress.append((d, t, c))
        )
    )
    names = [r.name for r in results]
    assert names[0] == "two-short" and results[0].runs >= 4
    assert "synthetic-b2xs16" not in names  # covered by the prompt line
    assert {r.bucket for r in results} == set(BUCKETS)
    assert progress[-1] == (len(BUCKETS), len(BUCKETS), "")


def test_a_failing_request_names_the_shape() -> None:
    with pytest.raises(WarmupError, match=r"'broken'.*400.*bad body"):
        asyncio.run(run_warmup(CountingPath(), [PromptLine("broken", b"bad")], BUCKETS, None, WarmupPolicy()))


def test_expected_error_status_passes() -> None:
    results = asyncio.run(
        run_warmup(
            CountingPath(), [PromptLine("refused", b"bad", expect_status=400)], BUCKETS, None, WarmupPolicy()
        )
    )
    assert results[0].runs >= 2  # two agreeing runs (an expected error is never predicted)


def test_deadline_names_the_shape_being_warmed() -> None:
    with pytest.raises(WarmupDeadline, match="synthetic-b1xs16"):
        asyncio.run(
            run_warmup(CountingPath(), [], BUCKETS, synthetic, WarmupPolicy(), deadline=time.monotonic() - 1)
        )


class OverlapPath(CountingPath):
    """A request path that notes which sequence buckets run at the same time as each call."""

    def __init__(self) -> None:
        super().__init__()
        self.running: list[int] = []
        self.overlaps: list[tuple[int, ...]] = []

    async def __call__(self, body: bytes, content_type: str, accept: str) -> Reply:
        seq = int(body.split(b"x")[1])
        self.running.append(seq)
        self.overlaps.append(tuple(self.running))
        for _ in range(3):  # let another lane start meanwhile (yields, not time)
            await asyncio.sleep(0)
        self.running.remove(seq)
        return await super().__call__(body, content_type, accept)


def plan_body(body: bytes, content_type: str, accept: str) -> Planned:
    rows, seq = (int(x) for x in body.split(b"x"))
    return Planned(PLAN.select(rows, seq), None)


@pytest.mark.parametrize("lanes", [1, 2])
def test_lanes_warm_shapes_at_once_but_never_two_of_one_sequence_bucket(lanes: int) -> None:
    path = OverlapPath()
    results = asyncio.run(
        run_warmup(path, [], BUCKETS, synthetic, WarmupPolicy(), shape_of=plan_body, lanes=lanes)
    )
    assert {r.bucket for r in results} == set(BUCKETS)
    assert max(len(o) for o in path.overlaps) == lanes
    assert all(len(set(o)) == len(o) for o in path.overlaps)  # no sequence bucket twice at once
