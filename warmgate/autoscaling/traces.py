"""Request traces for the simulator: synthetic shapes and loaders for recorded traffic.

A :class:`Trace` is a sorted tuple of arrival times (seconds from the start), one relative
request size per arrival (service time multiplier, mean about 1), and the times at which a
hot replica crashes. Synthetic traces draw from a ``random.Random`` the caller seeds, so the
same seed gives the same trace.
"""

from __future__ import annotations

import csv
import gzip
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import TextIO

from warmgate.errors import ConfigError

RateFn = Callable[[float], float]


@dataclass(frozen=True)
class Trace:
    name: str
    duration_s: float
    arrivals: tuple[float, ...]
    sizes: tuple[float, ...]
    crashes: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.arrivals) != len(self.sizes):
            raise ConfigError(
                f"trace {self.name!r}: {len(self.arrivals)} arrivals but {len(self.sizes)} sizes"
            )

    @property
    def mean_rate(self) -> float:
        return len(self.arrivals) / self.duration_s if self.duration_s > 0 else 0.0


class TraceKind(Enum):
    STEADY = "steady"
    DIURNAL = "diurnal"
    SPIKE = "spike"
    FAILURE_STORM = "failure-storm"


def poisson_arrivals(rate: RateFn, peak: float, duration_s: float, rng: random.Random) -> tuple[float, ...]:
    """Non-homogeneous Poisson arrivals by thinning; ``peak`` must bound ``rate``."""
    out: list[float] = []
    t = 0.0
    if peak <= 0:
        return ()
    while True:
        t += rng.expovariate(peak)
        if t >= duration_s:
            return tuple(out)
        if rng.random() * peak < rate(t):
            out.append(t)


def steady(rng: random.Random, rate: float = 2.0, duration_s: float = 3600.0) -> Trace:
    arrivals = poisson_arrivals(lambda _t: rate, rate, duration_s, rng)
    return Trace("steady", duration_s, arrivals, (1.0,) * len(arrivals))


def diurnal(
    rng: random.Random,
    mean_rate: float = 2.0,
    swing: float = 0.8,
    period_s: float = 86400.0,
    duration_s: float = 86400.0,
) -> Trace:
    """A day's sine: quietest at the start, busiest half a period later."""

    def rate(t: float) -> float:
        return mean_rate * (1.0 - swing * math.cos(2 * math.pi * t / period_s))

    arrivals = poisson_arrivals(rate, mean_rate * (1 + swing), duration_s, rng)
    return Trace("diurnal", duration_s, arrivals, (1.0,) * len(arrivals))


def spike_rate(
    base_rate: float, factor: float, at_s: float, ramp_s: float, hold_s: float, decay_s: float
) -> RateFn:
    """Base load; at ``at_s`` a linear ramp to ``factor`` x base over ``ramp_s``, a plateau
    for ``hold_s``, then an exponential decay (time constant ``decay_s``) back to base."""

    def rate(t: float) -> float:
        if t < at_s:
            return base_rate
        if t < at_s + ramp_s:
            return base_rate * (1 + (factor - 1) * (t - at_s) / ramp_s)
        if t < at_s + ramp_s + hold_s:
            return base_rate * factor
        fade = math.exp(-(t - at_s - ramp_s - hold_s) / decay_s)
        return base_rate * (1 + (factor - 1) * fade)

    return rate


def spike(
    rng: random.Random,
    base_rate: float = 2.0,
    factor: float = 10.0,
    at_s: float = 900.0,
    ramp_s: float = 30.0,
    hold_s: float = 900.0,
    decay_s: float = 900.0,
    duration_s: float = 3600.0,
) -> Trace:
    """A new chapter drops: x10 in 30 s, a plateau, a slow fade."""
    rate = spike_rate(base_rate, factor, at_s, ramp_s, hold_s, decay_s)
    arrivals = poisson_arrivals(rate, base_rate * factor, duration_s, rng)
    return Trace("spike", duration_s, arrivals, (1.0,) * len(arrivals))


def failure_storm(
    rng: random.Random,
    rate: float = 6.0,
    duration_s: float = 3600.0,
    storm_at_s: float = 1200.0,
    crashes: int = 4,
    storm_s: float = 60.0,
) -> Trace:
    """Steady load while ``crashes`` hot replicas die within ``storm_s`` seconds."""
    arrivals = poisson_arrivals(lambda _t: rate, rate, duration_s, rng)
    times = tuple(sorted(storm_at_s + rng.uniform(0, storm_s) for _ in range(crashes)))
    return Trace("failure-storm", duration_s, arrivals, (1.0,) * len(arrivals), times)


def synthetic(kind: TraceKind, rng: random.Random) -> Trace:
    if kind is TraceKind.STEADY:
        return steady(rng)
    if kind is TraceKind.DIURNAL:
        return diurnal(rng)
    if kind is TraceKind.SPIKE:
        return spike(rng)
    return failure_storm(rng)


def load_counts_csv(path: Path, rng: random.Random) -> Trace:
    """``timestamp,requests`` rows (seconds, count per interval up to the next row).

    Arrivals are spread uniformly at random inside each interval; the last interval is
    as long as the one before it (1 s if there is only one row).
    """
    rows: list[tuple[float, int]] = []
    with _open_text(path) as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            try:
                rows.append((float(row["timestamp"]), int(row["requests"])))
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError(
                    f"{path}:{line_no}: expected columns timestamp,requests with a number and a count ({e})"
                ) from None
    if not rows:
        raise ConfigError(f"{path}: no rows; expected a header timestamp,requests and data")
    rows.sort()
    start = rows[0][0]
    ends = [t for t, _ in rows[1:]]
    ends.append(rows[-1][0] + (rows[-1][0] - rows[-2][0] if len(rows) > 1 else 1.0))
    arrivals: list[float] = []
    for (t, n), end in zip(rows, ends, strict=True):
        arrivals.extend(rng.uniform(t, end) - start for _ in range(n))
    arrivals.sort()
    return Trace(_name(path), ends[-1] - start, tuple(arrivals), (1.0,) * len(arrivals))


def load_azure_llm_csv(path: Path, prefill_speedup: float = 8.0, time_scale: float = 1.0) -> Trace:
    """The Azure LLM inference trace: ``TIMESTAMP,ContextTokens,GeneratedTokens``, one row
    per request. A request's size is ``ContextTokens / prefill_speedup + GeneratedTokens``,
    normalised to mean 1. ``time_scale`` < 1 compresses time (raising the rate)."""
    stamps: list[float] = []
    work: list[float] = []
    with _open_text(path) as f:
        for line_no, row in enumerate(csv.DictReader(f), start=2):
            try:
                when = datetime.fromisoformat(row["TIMESTAMP"])
                stamp = when.replace(tzinfo=UTC).timestamp()
                tokens = int(row["ContextTokens"]) / prefill_speedup + int(row["GeneratedTokens"])
            except (KeyError, TypeError, ValueError) as e:
                raise ConfigError(
                    f"{path}:{line_no}: expected TIMESTAMP,ContextTokens,GeneratedTokens ({e})"
                ) from None
            stamps.append(stamp)
            work.append(max(tokens, 1.0))
    if not stamps:
        raise ConfigError(f"{path}: no requests")
    order = sorted(range(len(stamps)), key=stamps.__getitem__)
    start = stamps[order[0]]
    mean_work = sum(work) / len(work)
    arrivals = tuple((stamps[i] - start) * time_scale for i in order)
    sizes = tuple(work[i] / mean_work for i in order)
    duration = math.ceil(arrivals[-1] + 1.0)
    return Trace(_name(path), float(duration), arrivals, sizes)


def _open_text(path: Path) -> TextIO:
    """A CSV file, gzip-compressed when its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="")
    return path.open(newline="")


def _name(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".csv")


def load_csv(path: Path, rng: random.Random) -> Trace:
    """Either format, told apart by the header."""
    with _open_text(path) as f:
        header = f.readline().strip().split(",")
    if "TIMESTAMP" in header:
        return load_azure_llm_csv(path)
    return load_counts_csv(path, rng)
