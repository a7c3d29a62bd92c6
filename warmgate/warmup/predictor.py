"""Predict a shape's steady latency from the shapes already warmed.

On CPU the cost of one padded batch grows with the positions it computes, ``batch × seq``
(attention's quadratic term is small next to the dense layers at these lengths). The predictor
fits ``latency = fixed + per_position × work`` to the steady latencies seen so far, weighting
every point by its relative error, so a 5 ms shape counts as much as a 500 ms one. The warmup
runner uses it to accept a shape whose *first* run already lands on the prediction: an expensive
shape then runs once instead of twice.

Pure: numbers in, numbers out; no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from warmgate.models.base import Bucket


def work(bucket: Bucket) -> int:
    """Positions one run of ``bucket`` computes (rows × sequence; rows when there is no sequence)."""
    return bucket.batch * max(bucket.seq, 1)


@dataclass(frozen=True)
class LatencyFit:
    fixed_s: float
    per_unit_s: float

    def __call__(self, units: int) -> float:
        return self.fixed_s + self.per_unit_s * units


@dataclass
class SteadyPredictor:
    """Steady latencies by work; predicts only from ``min_points`` distinct works, and only up to
    ``max_extrapolation`` × the largest work seen (further out a line is a guess)."""

    min_points: int = 2
    max_extrapolation: float = 4.0
    _points: dict[int, float] = field(default_factory=dict)

    def add(self, units: int, steady_s: float) -> None:
        if units > 0 and steady_s > 0:
            self._points[units] = steady_s

    def fit(self) -> LatencyFit | None:
        """Least squares on relative error, both terms kept non-negative; None without enough
        distinct points or when the points fall with work (noise, not a cost model)."""
        if len(self._points) < self.min_points:
            return None
        xs = list(self._points)
        ys = [self._points[x] for x in xs]
        ws = [1.0 / (y * y) for y in ys]
        sw = sum(ws)
        swx = sum(w * x for w, x in zip(ws, xs, strict=True))
        swy = sum(w * y for w, y in zip(ws, ys, strict=True))
        swxx = sum(w * x * x for w, x in zip(ws, xs, strict=True))
        swxy = sum(w * x * y for w, x, y in zip(ws, xs, ys, strict=True))
        det = sw * swxx - swx * swx
        slope = (sw * swxy - swx * swy) / det if det > 0 else 0.0
        if slope <= 0:
            return None
        intercept = (swy - slope * swx) / sw
        if intercept >= 0:
            return LatencyFit(intercept, slope)
        return LatencyFit(0.0, swxy / swxx)  # a negative fixed cost: refit through the origin

    def predict(self, units: int) -> float | None:
        if not self._points or units > self.max_extrapolation * max(self._points):
            return None
        fitted = self.fit()
        return fitted(units) if fitted is not None else None
