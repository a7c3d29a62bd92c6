"""A replica model from measurements, parsed offline: a replica's own ``/metrics`` and the
latencies a load generator saw through the load balancer.

From ``/metrics`` (Prometheus text), :func:`replica_from_metrics`:

- ``warmgate_model_load_seconds`` → ``load_s``;
- the sum of ``warmgate_warmup_seconds`` over every shape → ``warmup_s``;
- ``warmgate_warmup_steady_latency_seconds`` of the shapes named ``batch-N-...`` → the service
  curve: N requests served together each take that shape's converged latency. ``service_s``
  becomes the smallest batch's latency and ``concurrency`` the largest batch.

Everything else (provision time, queue depth, claim time) is kept from ``base``: a replica
cannot see how long its host took to provision. Fetching the text is the caller's business
(``curl http://replica/metrics > replica.prom``), so this module stays pure.

From a sweep of open-loop requests to one replica behind the load balancer (what
``scripts/fleet_replay.py`` runs before its replay), :func:`fit_service` splits each request's
latency into a fixed per-request overhead (the HTTP client, HAProxy, the replica's event loop:
no request is faster) and a variable part whose median grows with the requests outstanding
when it was sent (batching, processor sharing) and whose spread is log-normal:
``latency = overhead + (lone + per_request x (n - 1)) x LogNormal(0, sigma)``.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from warmgate.autoscaling.scenario import ReplicaModel
from warmgate.errors import ConfigError

LOAD = "warmgate_model_load_seconds"
WARMUP = "warmgate_warmup_seconds"
STEADY = "warmgate_warmup_steady_latency_seconds"
DURATION = "warmgate_request_duration_seconds"
_BATCH = re.compile(r"^batch-(\d+)\b")


def replica_from_metrics(text: str, base: ReplicaModel) -> ReplicaModel:
    """``base`` with load, warmup and service times measured by the replica itself."""
    load: float | None = None
    warmup = 0.0
    curve: dict[int, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == LOAD:
                load = sample.value
            elif sample.name == WARMUP:
                warmup += sample.value
            elif sample.name == STEADY and (m := _BATCH.match(sample.labels.get("shape", ""))):
                size = int(m.group(1))
                curve[size] = max(curve.get(size, 0.0), sample.value)
    if load is None:
        raise ConfigError(f"no {LOAD} in the metrics text: pass a READY warmgate replica's /metrics output")
    measured = dataclasses.replace(base, load_s=load, warmup_s=warmup)
    points = tuple(sorted(curve.items()))
    if not points:
        return measured
    return dataclasses.replace(
        measured, service_curve=points, service_s=points[0][1], concurrency=points[-1][0]
    )


def served_seconds(text: str, route: str = "/invocations") -> tuple[int, float]:
    """``(count, total seconds)`` of the requests to ``route`` answered 200, by the replica's
    own clock (``warmgate_request_duration_seconds``): the part of the latency spent inside it."""
    count, total = 0, 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") != route or sample.labels.get("status") != "200":
                continue
            if sample.name == DURATION + "_count":
                count += int(sample.value)
            elif sample.name == DURATION + "_sum":
                total += sample.value
    return count, total


Z90 = statistics.NormalDist().inv_cdf(0.90)
Z99 = statistics.NormalDist().inv_cdf(0.99)
MIN_TAIL = 100  # latencies a tail fit needs: its 99th percentile rests on the top 1 %
MIN_GROUP = 10  # samples a concurrency level needs before its median counts


@dataclass(frozen=True)
class ShiftedLogNormal:
    """``shift_s + median_s x exp(sigma x Z)``, Z standard normal: a floor plus a skewed spread."""

    shift_s: float
    median_s: float
    sigma: float

    def quantile(self, q: float) -> float:
        return self.shift_s + self.median_s * math.exp(self.sigma * statistics.NormalDist().inv_cdf(q))


def _quantile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _tail_sigma(ratio: float) -> float:
    """The sigma at which ``(e^(Z99 s) - 1) / (e^(Z90 s) - 1)`` (rising from Z99/Z90) is ``ratio``."""
    low, high = 0.0, 20.0
    for _ in range(100):
        mid = (low + high) / 2
        if math.expm1(Z99 * mid) / math.expm1(Z90 * mid) < ratio:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def fit_shifted_lognormal(samples: Sequence[float], minimum: int = MIN_TAIL) -> ShiftedLogNormal:
    """A three-parameter log-normal matched to the 50th, 90th and 99th percentiles: the body
    and the tail that p99 and the SLA read, rather than the fastest requests. A tail too light
    for any floor (p99 - p50 under Z99/Z90 x (p90 - p50)), or a floor that would come out
    negative, gives no floor: median and upper spread alone. Fewer than ``minimum`` samples
    are refused."""
    if len(samples) < minimum or min(samples) <= 0:
        raise ConfigError(
            f"need at least {minimum} positive latencies to fit a tail, got {len(samples)} "
            f"(smallest {min(samples, default=0.0)}): sweep longer or at more rates"
        )
    ordered = sorted(samples)
    q50, q90, q99 = (_quantile(ordered, q) for q in (0.5, 0.9, 0.99))
    body, tail = q90 - q50, q99 - q50
    if body > 0 and tail > body * Z99 / Z90:
        sigma = _tail_sigma(tail / body)
        median = body / math.expm1(Z90 * sigma)
        if q50 - median >= 0:
            return ShiftedLogNormal(q50 - median, median, sigma)
    return ShiftedLogNormal(0.0, q50, math.log(q99 / q50) / Z99)


def concurrency_at_send(rows: Sequence[tuple[float, float]]) -> list[int]:
    """For each ``(sent_at, latency)``, the requests outstanding when it was sent, itself included."""
    starts = sorted(s for s, _ in rows)
    ends = sorted(s + latency for s, latency in rows)
    return [bisect.bisect_right(starts, s) - bisect.bisect_right(ends, s) for s, _ in rows]


@dataclass(frozen=True)
class ServiceFit:
    """A replica's latency as the load balancer sees it (seconds): ``overhead_s`` fixed, plus
    a variable part of median ``lone_s + per_request_s x (n - 1)`` with ``n`` requests
    outstanding, spread log-normally by ``sigma``."""

    overhead_s: float
    lone_s: float
    per_request_s: float
    sigma: float
    samples: int

    @property
    def median_lone_s(self) -> float:
        """A lone request's median latency: its own service time, end to end."""
        return self.overhead_s + self.lone_s

    def curve(self, up_to: int) -> tuple[tuple[int, float], ...]:
        """The variable part's median for 1..``up_to`` requests outstanding."""
        return tuple((n, self.lone_s + self.per_request_s * (n - 1)) for n in range(1, up_to + 1))

    def replica(self, base: ReplicaModel, concurrency: int) -> ReplicaModel:
        """``base`` serving up to ``concurrency`` requests together with this fit's times."""
        return dataclasses.replace(
            base,
            concurrency=concurrency,
            service_s=self.lone_s,
            service_curve=self.curve(concurrency),
            overhead_s=self.overhead_s,
            service_sigma=self.sigma,
        )


def _growth(samples: Sequence[tuple[int, float]], dist: ShiftedLogNormal) -> float:
    """Least-squares growth of the variable part's median per extra request outstanding,
    through ``dist``'s median at n = 1, over every level with ``MIN_GROUP`` samples (weighted
    by their counts); never negative: a replica does not get faster with more to do."""
    groups: dict[int, list[float]] = {}
    for n, latency in samples:
        groups.setdefault(n, []).append(latency)
    num = den = 0.0
    for n, latencies in groups.items():
        if n > 1 and len(latencies) >= MIN_GROUP:
            excess = statistics.median(latencies) - dist.shift_s - dist.median_s
            num += len(latencies) * (n - 1) * excess
            den += len(latencies) * (n - 1) ** 2
    return max(0.0, num / den) if den else 0.0


def fit_service(samples: Sequence[tuple[int, float]]) -> ServiceFit:
    """Fit :class:`ServiceFit` to ``(requests outstanding at send, latency)`` samples.

    Two passes. First the floor, median and spread of the lone requests (n = 1; every sample
    when fewer than ``MIN_TAIL`` were alone) and the growth with n (:func:`_growth`). Then
    every sample is scaled back to n = 1 (its variable part divided by its level's growth)
    and the distribution is fitted again to all of them, and the growth once more: a stall
    that slows one request also raises n for the requests sent behind it, so the lone
    requests alone would understate the tail.
    """
    lone = [latency for n, latency in samples if n <= 1]
    dist = fit_shifted_lognormal(lone if len(lone) >= MIN_TAIL else [lat for _, lat in samples])
    slope = _growth(samples, dist)
    for _ in range(2):
        shift, median = dist.shift_s, dist.median_s
        scaled = [shift + (lat - shift) * median / (median + slope * (n - 1)) for n, lat in samples]
        dist = fit_shifted_lognormal(scaled)
        slope = _growth(samples, dist)
    return ServiceFit(dist.shift_s, dist.median_s, slope, dist.sigma, len(samples))


def fit_sweep_rows(rows: Sequence[Sequence[float]]) -> ServiceFit:
    """:func:`fit_service` of a load generator's rows ``[sent_at, latency_s, status]``
    (``python -m warmgate.fleet.loadgen``'s output): the requests answered 200."""
    ok = [(float(row[0]), float(row[1])) for row in rows if int(row[2]) == 200]
    outstanding = concurrency_at_send(ok)
    return fit_service([(n, latency) for n, (_, latency) in zip(outstanding, ok, strict=True)])
