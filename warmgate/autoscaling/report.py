"""Simulation results and their text rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TimelinePoint:
    """One control tick: load since the previous tick, replicas by kind, tail latency."""

    at: float
    request_rate: float
    hot: int
    warming: int
    pooled: int
    p99_latency_s: float | None
    sla_misses: int


@dataclass(frozen=True)
class SimReport:
    """``late`` waited longer than the budget (latency minus the request's own service time:
    a long request is not late just because it is long); ``refused`` were held by the router
    past its timeout; ``crashed`` were on a replica that died. These three are SLA misses.
    ``slow`` counts requests whose whole latency exceeded the budget (the naive figure,
    reported beside it).
    ``met_no_ready`` arrived when no hot replica had room (cold-start exposure).
    Replica-hours: ``hot`` READY or DRAINING, ``warming`` starting up or being claimed,
    ``pooled`` warm standbys (warming or ready) in the pool, ``hibernated`` standbys of the
    hibernated tier while they sleep (``resumes`` of them were woken); ``slim`` the share of
    ``pooled`` that READY standbys spent resized down (``SimConfig.slim``)."""

    trace: str
    requests: int
    served: int
    refused: int
    crashed: int
    late: int
    met_no_ready: int
    below_floor_s: float
    hot_hours: float
    warming_hours: float
    pooled_hours: float
    p50_latency_s: float | None
    p99_latency_s: float | None
    pool_claims: int
    cold_starts: int
    timeline: tuple[TimelinePoint, ...] = ()
    slow: int = 0
    hibernated_hours: float = 0.0
    hibernated_price: float = 1.0
    resumes: int = 0
    slim_hours: float = 0.0
    slim_price: float = 1.0

    @property
    def sla_misses(self) -> int:
        return self.late + self.refused + self.crashed

    @property
    def sla_miss_ratio(self) -> float:
        return self.sla_misses / self.requests if self.requests else 0.0

    @property
    def latency_miss_ratio(self) -> float:
        """Refused, lost or slower than the budget end to end (the naive SLA)."""
        bad = self.slow + self.refused + self.crashed
        return bad / self.requests if self.requests else 0.0

    @property
    def replica_hours(self) -> float:
        """Full-price accounting: every instance counts as a replica, hibernated ones too."""
        return self.hot_hours + self.warming_hours + self.pooled_hours + self.hibernated_hours

    @property
    def priced_hours(self) -> float:
        """Tiered accounting: hibernated standbys at ``hibernated_price`` of a replica, slim
        standbys at ``slim_price``."""
        return (
            self.replica_hours
            - (1.0 - self.hibernated_price) * self.hibernated_hours
            - (1.0 - self.slim_price) * self.slim_hours
        )


_COLUMNS = (
    "policy",
    "requests",
    "SLA miss",
    "miss %",
    "latency miss %",
    "no ready",
    "below floor s",
    "hot h",
    "warming h",
    "pooled h",
    "total h",
    "x min-2",
    "p99 s",
)


def format_table(rows: Sequence[tuple[str, SimReport]], baseline: str | None = None) -> str:
    """A Markdown table, one row per (policy name, report); ``x min-2`` divides each
    total by the ``baseline`` row's total (omitted when there is none). When a row prices a
    standby tier below a replica (slim or hibernated), ``x min-2 priced`` follows, on its
    tiered accounting."""
    base = next((r.replica_hours for name, r in rows if name == baseline), None)
    tiered = any(r.priced_hours < r.replica_hours for _, r in rows)
    columns = (*_COLUMNS, "x min-2 priced") if tiered else _COLUMNS
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|",
    ]
    for name, r in rows:
        ratio = f"{r.replica_hours / base:.2f}" if base else "-"
        p99 = f"{r.p99_latency_s:.2f}" if r.p99_latency_s is not None else "-"
        cells: tuple[str, ...] = (
            name,
            str(r.requests),
            str(r.sla_misses),
            f"{100 * r.sla_miss_ratio:.2f}",
            f"{100 * r.latency_miss_ratio:.2f}",
            str(r.met_no_ready),
            f"{r.below_floor_s:.0f}",
            f"{r.hot_hours:.2f}",
            f"{r.warming_hours:.2f}",
            f"{r.pooled_hours:.2f}",
            f"{r.replica_hours:.2f}",
            ratio,
            p99,
        )
        if tiered:
            cells = (*cells, f"{r.priced_hours / base:.2f}" if base else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(report: SimReport) -> str:
    p50 = f"{report.p50_latency_s:.3f}" if report.p50_latency_s is not None else "-"
    p99 = f"{report.p99_latency_s:.3f}" if report.p99_latency_s is not None else "-"
    return "\n".join(
        (
            f"trace {report.trace}: {report.requests} requests, {report.served} served",
            f"  SLA misses {report.sla_misses} ({100 * report.sla_miss_ratio:.2f} %): "
            f"late {report.late}, refused {report.refused}, crashed {report.crashed}; "
            f"latency over budget {report.slow} ({100 * report.latency_miss_ratio:.2f} %)",
            f"  met no ready replica {report.met_no_ready}; below floor {report.below_floor_s:.0f} s",
            f"  replica-hours hot {report.hot_hours:.2f}, warming {report.warming_hours:.2f}, "
            f"pooled {report.pooled_hours:.2f}, total {report.replica_hours:.2f}",
            f"  latency p50 {p50} s, p99 {p99} s; pool claims {report.pool_claims}, "
            f"cold starts {report.cold_starts}",
        )
    )
