"""When a shape counts as warm: a run no slower than the predicted latency, a run no faster than
the earlier ones, or max runs; and the runner spends no more runs than that, least work first."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import pytest

from warmgate.errors import WarmupError
from warmgate.models.base import Bucket, Item, SyntheticRequest
from warmgate.warmup.predictor import SteadyPredictor, work
from warmgate.warmup.promptset import PromptLine
from warmgate.warmup.runner import Planned, Settled, WarmupPolicy, run_warmup, settle

POLICY = WarmupPolicy(max_runs=6, tolerance=0.1)
BUCKETS = [Bucket(b, s) for s in (16, 64, 256) for b in (1, 4, 16)]


def test_a_run_no_faster_than_the_earlier_ones_settles_a_shape() -> None:
    assert settle([0.010], None, 1, POLICY) is None
    assert settle([0.015, 0.010], None, 1, POLICY) is None  # cold first run
    assert settle([0.015, 0.010, 0.0105], None, 1, POLICY) is Settled.AGREEMENT
    # The first run was already steady; a busy machine slowed the second: no third run.
    assert settle([0.010, 0.020], None, 1, POLICY) is Settled.AGREEMENT


def test_a_first_run_on_the_prediction_settles_at_once() -> None:
    assert settle([0.100], 0.095, 1, POLICY) is Settled.PREDICTION
    assert settle([0.060], 0.100, 1, POLICY) is Settled.PREDICTION  # faster than predicted: warm
    assert settle([0.150], 0.100, 1, POLICY) is None  # 1.5× the prediction: cold, run again
    assert settle([0.111], 0.100, 1, POLICY) is None  # just past the tolerance
    assert settle([0.100], 0.095, 3, POLICY) is None  # a prompt line's repeat is a floor
    assert settle([0.100], 0.095, 1, WarmupPolicy(predict=False)) is None


def test_max_runs_stops_a_shape_that_never_settles() -> None:
    assert settle([6.0, 5.0, 4.0, 3.0, 2.0, 1.0], None, 1, POLICY) is Settled.MAX_RUNS  # ever faster


def cpu_cost(shape: Bucket) -> float:
    """2 ms fixed, 10 µs per position and 20 ns per attention pair (positions × seq)."""
    return 0.002 + 1e-5 * work(shape) + 2e-8 * work(shape) * shape.seq


def test_predictor_recovers_a_cost_with_an_attention_term_and_refuses_to_guess() -> None:
    predictor = SteadyPredictor()
    seen = [Bucket(1, 16), Bucket(4, 16), Bucket(1, 64), Bucket(4, 64), Bucket(1, 256), Bucket(2, 256)]
    predictor.add(seen[0], cpu_cost(seen[0]))
    assert predictor.predict(Bucket(2, 16)) is None  # one point is no model
    for shape in seen[1:]:
        predictor.add(shape, cpu_cost(shape))
    for target in (Bucket(16, 256), Bucket(8, 128), Bucket(16, 32)):
        assert predictor.predict(target) == pytest.approx(cpu_cost(target), rel=1e-6)
    assert predictor.predict(Bucket(17, 256)) is None  # past 8× the largest work seen


def test_a_line_through_two_points_predicts_until_more_points_come() -> None:
    predictor = SteadyPredictor()
    predictor.add(Bucket(1, 16), 0.002 + 16e-5)
    predictor.add(Bucket(4, 16), 0.002 + 64e-5)
    assert predictor.predict(Bucket(16, 16)) == pytest.approx(0.002 + 256e-5)


def test_a_warmed_shape_predicts_itself() -> None:
    predictor = SteadyPredictor()
    predictor.add(Bucket(1, 7), 0.006)
    assert predictor.predict(Bucket(1, 7)) == 0.006  # the same computation: the same latency
    assert predictor.predict(Bucket(1, 9)) is None
    # A bucket standing in for shapes of unknown cost (a handler's, a tensor batch) does not.
    assert predictor.predict(Bucket(1, 7), computed=False) is None


def test_the_nearest_warmed_shape_corrects_a_region_the_line_misses() -> None:
    """Long texts cost 30 % more per row in a batch than the small shapes' line says: the
    prediction for a bigger long shape follows the nearest long one, not the line."""
    predictor = SteadyPredictor()
    for shape in (Bucket(1, 8), Bucket(2, 8), Bucket(4, 8), Bucket(1, 32), Bucket(4, 32)):
        predictor.add(shape, 0.002 + 1e-5 * work(shape))
    predictor.add(Bucket(8, 230), 1.3 * (0.002 + 1e-5 * 8 * 230))
    expected = 1.3 * (0.002 + 1e-5 * 32 * 256)
    predicted = predictor.predict(Bucket(32, 256))
    assert predicted is not None
    assert predicted == pytest.approx(expected, rel=POLICY.tolerance)
    line = 0.002 + 1e-5 * 32 * 256  # what the small shapes alone say
    assert abs(predicted - line) > POLICY.tolerance * line


def test_predictor_ignores_noise_that_falls_with_work() -> None:
    predictor = SteadyPredictor()
    predictor.add(Bucket(1, 16), 0.010)
    predictor.add(Bucket(4, 16), 0.005)
    assert predictor.predict(Bucket(8, 16)) is None


@dataclass(frozen=True)
class Reply:
    item: Item


class SimulatedModel:
    """A request path on a scripted clock: a run of ``rows × seq`` costs 1 ms + 10 µs per
    position; the first run of each bucket is ``cold`` × that. Bodies are ``b'<rows>x<seq>'``."""

    def __init__(self, cold: float) -> None:
        self.now = 0.0
        self.cold = cold
        self.runs: Counter[Bucket] = Counter()

    def clock(self) -> float:
        return self.now

    async def __call__(self, body: bytes, content_type: str, accept: str) -> Reply:
        rows, seq = (int(x) for x in body.split(b"x"))
        bucket = next(b for b in BUCKETS if b.batch >= rows and b.seq >= seq)
        cost = 0.001 + 1e-5 * work(bucket)
        self.now += cost * (self.cold if self.runs[bucket] == 0 else 1.0)
        self.runs[bucket] += 1
        return Reply(Item(key=bucket.seq, size=rows, payload=None, bucket=bucket))


def synthetic(bucket: Bucket) -> SyntheticRequest:
    body = f"{bucket.batch}x{bucket.seq}".encode()
    return SyntheticRequest(f"synthetic-{bucket.label()}", body, "text/plain")


def test_warm_shapes_run_once_once_the_cost_is_predictable() -> None:
    model = SimulatedModel(cold=1.0)
    results = asyncio.run(run_warmup(model, [], BUCKETS, synthetic, POLICY, clock=model.clock))
    works = [work(r.bucket) for r in results if r.bucket]
    assert works == sorted(works)  # cheapest first: predictions extrapolate from small shapes
    assert [r.settled for r in results[:2]] == [Settled.AGREEMENT] * 2
    assert all(r.settled is Settled.PREDICTION and r.runs == 1 for r in results[2:])
    largest = max(BUCKETS, key=work)
    assert model.runs[largest] == 1


def test_a_cold_first_run_is_not_taken_for_steady() -> None:
    model = SimulatedModel(cold=1.5)
    results = asyncio.run(run_warmup(model, [], BUCKETS, synthetic, POLICY, clock=model.clock))
    for r in results:
        assert r.runs >= 2 and r.steady_s < r.first_s
        assert r.bucket is not None
        assert r.steady_s == pytest.approx(0.001 + 1e-5 * work(r.bucket))


def test_http_stage_sends_the_smallest_body_of_each_media_type_pair() -> None:
    model = SimulatedModel(cold=1.0)
    sent: list[tuple[bytes, str, str]] = []

    async def http(body: bytes, content_type: str, accept: str) -> int:
        sent.append((body, content_type, accept))
        model.now += 0.003
        return 200

    prompts = [
        PromptLine("json-big", b"16x64", "application/json"),
        PromptLine("json-small", b"1x16", "application/json"),
        PromptLine("plain", b"4x16", "text/plain", accept="application/jsonlines"),
    ]
    results = asyncio.run(run_warmup(model, prompts, BUCKETS, None, POLICY, http=http, clock=model.clock))
    over_http = [r for r in results if r.over_http]
    assert [r.name for r in over_http] == ["http-json-small", "http-plain"]
    assert all(r.runs == 2 and r.settled is Settled.AGREEMENT for r in over_http)
    assert {s[:2] for s in sent} == {(b"1x16", "application/json"), (b"4x16", "text/plain")}


def test_http_stage_failure_names_the_shape() -> None:
    model = SimulatedModel(cold=1.0)

    async def http(body: bytes, content_type: str, accept: str) -> int:
        return 503

    with pytest.raises(WarmupError, match=r"'http-synthetic-b1xs16' over loopback HTTP answered 503"):
        asyncio.run(run_warmup(model, [], BUCKETS, synthetic, POLICY, http=http, clock=model.clock))


def test_one_noisy_run_after_a_steady_one_does_not_cost_another_run() -> None:
    assert settle([0.015, 0.010, 0.030], None, 1, POLICY) is Settled.AGREEMENT
    assert settle([0.030, 0.015, 0.010], None, 1, POLICY) is None  # still getting faster
    three = WarmupPolicy(tolerance=0.1, window=3)
    assert settle([0.015, 0.010, 0.030], None, 1, three) is None  # a wider window waits longer
    assert settle([0.015, 0.010, 0.030, 0.0102], None, 1, three) is Settled.AGREEMENT


class UnpaddedModel:
    """Like a CPU text backend: a batch runs at its rows × longest text, not its padded bucket,
    and says so on the item (``runs_at``). Bodies are ``b'<rows>x<longest>'``."""

    def __init__(self) -> None:
        self.now = 0.0
        self.runs: Counter[bytes] = Counter()

    def clock(self) -> float:
        return self.now

    async def __call__(self, body: bytes, content_type: str, accept: str) -> Reply:
        rows, longest = (int(x) for x in body.split(b"x"))
        bucket = next(b for b in BUCKETS if b.batch >= rows and b.seq >= longest)
        ran = Bucket(rows, longest)
        self.now += cpu_cost(ran) * (1.5 if self.runs[body] == 0 and self.runs.total() < 5 else 1.0)
        self.runs[body] += 1
        return Reply(Item(key=bucket.seq, size=rows, payload=None, bucket=bucket, runs_at=ran))


def test_the_shape_a_run_computes_not_its_bucket_drives_the_prediction() -> None:
    model = UnpaddedModel()
    shapes = ["1x5", "1x7", "1x12", "4x9", "1x40", "4x42", "1x200", "4x230", "16x230"]
    prompts = [PromptLine(f"p{i}", s.encode(), "text/plain") for i, s in enumerate(shapes)]
    results = asyncio.run(run_warmup(model, prompts, BUCKETS, None, POLICY, clock=model.clock))
    by_body = {r.name: r for r in results}
    biggest = by_body[f"p{len(shapes) - 1}"]
    assert biggest.ran == Bucket(16, 230) and biggest.bucket == Bucket(16, 256)
    assert biggest.settled is Settled.PREDICTION and biggest.runs == 1
    assert biggest.predicted_s == pytest.approx(cpu_cost(Bucket(16, 230)), rel=POLICY.tolerance)


def plan_unpadded(body: bytes, content_type: str, accept: str) -> Planned:
    """``shape_of`` for :class:`UnpaddedModel`: where a body lands, without running it."""
    rows, longest = (int(x) for x in body.split(b"x"))
    bucket = next(b for b in BUCKETS if b.batch >= rows and b.seq >= longest)
    return Planned(bucket, Bucket(rows, longest))


def test_with_a_plan_every_shape_runs_in_one_order_least_work_first() -> None:
    """Knowing where each line lands before it runs, the runner interleaves prompt lines and
    the synthetic requests of the buckets no line covers, least work first: the biggest shape
    comes last, when its neighbours are known, and runs once."""
    model = UnpaddedModel()
    shapes = ["16x230", "1x5", "4x42", "1x7", "1x200"]
    prompts = [PromptLine(f"p-{s}", s.encode(), "text/plain") for s in shapes]

    def synthetic_unpadded(bucket: Bucket) -> SyntheticRequest:
        return SyntheticRequest(
            f"synthetic-{bucket.label()}", f"{bucket.batch}x{bucket.seq}".encode(), "text/plain"
        )

    results = asyncio.run(
        run_warmup(
            model, prompts, BUCKETS, synthetic_unpadded, POLICY, clock=model.clock, shape_of=plan_unpadded
        )
    )
    ran = [r.ran for r in results]
    assert all(r is not None for r in ran)
    works = [work(r) for r in ran if r is not None]
    assert works == sorted(works)
    assert results[-1].name == "p-16x230" and results[-1].runs == 1
    assert results[-1].settled is Settled.PREDICTION
    names = {r.name for r in results}
    # Covered by a line: no synthetic request; every other bucket: exactly one.
    assert not names & {"synthetic-b16xs256", "synthetic-b4xs64", "synthetic-b1xs16", "synthetic-b1xs256"}
    assert {r.bucket for r in results} == set(BUCKETS)
    assert len(results) == len(prompts) + len(BUCKETS) - 4


def test_a_plan_that_fails_leaves_the_line_to_its_run() -> None:
    """A line the plan cannot place (bad body) still runs, first, and its error names it."""

    def refuse(body: bytes, content_type: str, accept: str) -> Planned:
        raise WarmupError("cannot place")

    model = UnpaddedModel()
    prompts = [PromptLine("p-4x42", b"4x42", "text/plain"), PromptLine("p-1x5", b"1x5", "text/plain")]
    results = asyncio.run(
        run_warmup(model, prompts, BUCKETS, None, POLICY, clock=model.clock, shape_of=refuse)
    )
    assert [r.name for r in results] == ["p-1x5", "p-4x42"]  # smallest body first, as without a plan


def test_a_traffic_line_is_anchored_on_the_nearest_traffic_line() -> None:
    """Real texts padded to their longest cost more per position than full synthetic rows: a
    big traffic line's prediction follows the nearest traffic line, not the synthetic shape
    next to it."""
    predictor = SteadyPredictor()
    for shape in (Bucket(1, 16), Bucket(4, 16), Bucket(4, 64), Bucket(16, 64), Bucket(16, 256)):
        predictor.add(shape, cpu_cost(shape), "synthetic")
    predictor.add(Bucket(8, 230), 1.25 * cpu_cost(Bucket(8, 230)), "traffic")
    expected = 1.25 * cpu_cost(Bucket(32, 256))
    as_traffic = predictor.predict(Bucket(32, 256), origin="traffic")
    as_synthetic = predictor.predict(Bucket(32, 256), origin="synthetic")
    assert as_traffic == pytest.approx(expected, rel=0.05)
    assert as_synthetic == pytest.approx(cpu_cost(Bucket(32, 256)), rel=0.05)
    # With no point of its origin yet, the nearest of any origin anchors it.
    assert predictor.predict(Bucket(32, 256), origin="other") == as_synthetic
