"""Predict a shape's steady latency from the shapes already warmed.

On CPU the cost of one run grows with the positions it computes, ``rows × seq`` (the dense
layers), plus a smaller term for attention, which grows with ``rows × seq²``. The predictor fits
``latency = fixed + per_position × positions + per_pair × positions × seq`` to the steady
latencies seen so far, weighting every point by its relative error, so a 5 ms shape counts as much
as a 500 ms one. With too few or too alike points to tell the terms apart it drops the attention
term, then the fixed cost; a fit with a negative term is noise, not a cost model, and predicts
nothing. The fit sets the ratio between two shapes and the nearest shape already warmed sets the
level: one line over every shape misses long texts in a batch by more than the tolerance. A shape
already warmed predicts its own steady latency, when the model reports the shape a run computed.

The shape is the one a run actually computes: rows × the longest text when the backend does not
pad to the bucket (:attr:`warmgate.models.base.Item.runs_at`), so predictions stay on the cost.
What fills that shape matters too: a batch of real texts padded to its longest costs more per
position than the same shape filled with full-length rows (MiniLM on ONNX Runtime, 32 × 256:
the default set's ``batch-32-with-long`` runs about 25 % slower than a synthetic request of its
bucket). So each point carries its ``origin`` (traffic lines, synthetic requests) and the anchor
is the nearest warmed shape of the same origin when there is one.
The warmup runner uses it to accept a shape whose *first* run already lands on the prediction:
an expensive shape then runs once instead of twice.

Pure: numbers in, numbers out; no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from warmgate.models.base import Bucket

# Which terms a fit keeps, most complete first: (fixed, positions, positions × seq).
_MODELS = ((True, True, True), (True, True, False), (False, True, True), (False, True, False))


def work(bucket: Bucket) -> int:
    """Positions one run of ``bucket`` computes (rows × sequence; rows when there is no sequence)."""
    return bucket.batch * max(bucket.seq, 1)


def _terms(shape: Bucket) -> tuple[float, float, float]:
    positions = float(work(shape))
    return 1.0, positions, positions * max(shape.seq, 1)


def _distance(a: Bucket, b: Bucket) -> float:
    """How far apart two shapes are in cost: log ratios of positions and (more) of sequence."""
    return abs(math.log(work(a) / work(b))) + 2 * abs(math.log(max(a.seq, 1) / max(b.seq, 1)))


@dataclass(frozen=True)
class LatencyFit:
    fixed_s: float
    per_position_s: float
    per_pair_s: float = 0.0

    def __call__(self, shape: Bucket) -> float:
        one, positions, pairs = _terms(shape)
        return self.fixed_s * one + self.per_position_s * positions + self.per_pair_s * pairs


def _solve(xs: np.ndarray, ys: np.ndarray, keep: tuple[bool, bool, bool]) -> list[float] | None:
    """Least squares on relative error with the kept terms (the dropped ones 0); None when they
    cannot be told apart: too few or collinear points."""
    cols = [i for i, k in enumerate(keep) if k]
    if len(ys) < (len(cols) if len(cols) < 3 else 5):  # all three terms from 5 points, not 3
        return None
    a = xs[:, cols] / ys[:, None]  # each row divided by its latency: relative error
    scale = np.abs(a).max(axis=0)
    if np.linalg.matrix_rank(a / scale, tol=1e-6) < len(cols):
        return None
    coef, *_ = np.linalg.lstsq(a / scale, np.ones_like(ys), rcond=None)
    full = [0.0, 0.0, 0.0]
    for i, c in zip(cols, coef / scale, strict=True):
        full[i] = float(c)
    return full


@dataclass
class SteadyPredictor:
    """Steady latencies by shape; predicts only from ``min_points`` distinct shapes, and only up
    to ``max_extrapolation`` × the largest work seen (further out a line is a guess)."""

    min_points: int = 2
    max_extrapolation: float = 8.0
    _points: dict[Bucket, float] = field(default_factory=dict)
    _origins: dict[Bucket, str] = field(default_factory=dict)

    def add(self, shape: Bucket, steady_s: float, origin: str = "") -> None:
        if work(shape) > 0 and steady_s > 0:
            self._points[shape] = steady_s
            self._origins[shape] = origin

    def fit(self) -> LatencyFit | None:
        """The most complete fit the points support with no negative term; None without enough
        distinct points or when latency falls with work (noise, not a cost model)."""
        if len(self._points) < self.min_points:
            return None
        xs = np.array([_terms(s) for s in self._points], dtype=np.float64)
        ys = np.array(list(self._points.values()), dtype=np.float64)
        line = _solve(xs, ys, _MODELS[1])
        if line is not None and line[1] <= 0:
            return None  # latency does not grow with work: noise, not a cost model
        for keep in _MODELS:
            coef = _solve(xs, ys, keep)
            if coef is not None and min(coef) >= 0 and coef[1] > 0:
                return LatencyFit(*coef)
        return None

    def predict(self, shape: Bucket, computed: bool = True, origin: str = "") -> float | None:
        """``computed``: ``shape`` is exactly what a run computes (the model says so), so a shape
        already warmed predicts itself; otherwise (a bucket standing in) only the fit does.
        ``origin``: anchor on the nearest shape of the same origin, when one was warmed."""
        if computed and shape in self._points:
            return self._points[shape]
        if not self._points or work(shape) > self.max_extrapolation * max(map(work, self._points)):
            return None
        fitted = self.fit()
        if fitted is None:
            return None
        # The fit gives the ratio between shapes; the nearest warmed shape anchors its level,
        # where a global line misses by more than the tolerance (long texts cost more per row in
        # a batch than alone).
        same = [p for p in self._points if self._origins[p] == origin] or list(self._points)
        near = min(same, key=lambda p: _distance(p, shape))
        return fitted(shape) * self._points[near] / fitted(near)
