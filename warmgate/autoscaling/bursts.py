"""Generated burst families: the shapes a burst-proof policy is held to, many seeds each.

A family is a jump factor and a duration. Each seed draws its own onset, rise time (at most
``max_rise_s``), base rate jitter and Poisson arrivals: base load, a linear rise to
``factor`` x base within the rise time, a plateau for ``hold_s``, a fall as fast as the rise,
then base load again. The grid spans x5 to x15 and 30 s to 15 min (the issue's goal).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from warmgate.autoscaling.traces import RateFn, Trace, poisson_arrivals


@dataclass(frozen=True)
class BurstFamily:
    factor: float
    hold_s: float
    base_rate: float = 2.0
    max_rise_s: float = 10.0
    lead_s: tuple[float, float] = (300.0, 600.0)  # the onset is drawn from this range
    tail_s: float = 600.0

    @property
    def name(self) -> str:
        return f"burst-x{self.factor:g}-{self.hold_s:g}s"


FACTORS = (5.0, 10.0, 15.0)
HOLDS_S = (30.0, 180.0, 900.0)
FAMILIES = tuple(BurstFamily(f, h) for f in FACTORS for h in HOLDS_S)
SEEDS = tuple(range(8))


def burst_rate(base: float, factor: float, at_s: float, rise_s: float, hold_s: float) -> RateFn:
    top = base * factor

    def rate(t: float) -> float:
        if t < at_s or t >= at_s + 2 * rise_s + hold_s:
            return base
        if t < at_s + rise_s:
            return base + (top - base) * (t - at_s) / rise_s
        if t < at_s + rise_s + hold_s:
            return top
        return top - (top - base) * (t - at_s - rise_s - hold_s) / rise_s

    return rate


def burst_trace(family: BurstFamily, seed: int) -> Trace:
    """One seed of ``family``: deterministic for a (family, seed) pair."""
    rng = random.Random(f"{family.name}/{seed}")
    at_s = rng.uniform(*family.lead_s)
    rise_s = rng.uniform(1.0, family.max_rise_s)
    base = family.base_rate * rng.uniform(0.8, 1.2)
    duration = at_s + 2 * rise_s + family.hold_s + family.tail_s
    rate = burst_rate(base, family.factor, at_s, rise_s, family.hold_s)
    arrivals = poisson_arrivals(rate, base * family.factor, duration, rng)
    return Trace(f"{family.name}/seed{seed}", duration, arrivals, (1.0,) * len(arrivals))
