"""PNG plots of simulation timelines (matplotlib, imported only when a plot is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from warmgate.autoscaling.report import SimReport, TimelinePoint

_FLOOR_S = 0.1  # latency axis floor (log scale); ticks without completions sit on it


def _bucket(points: Sequence[TimelinePoint], width_s: float) -> list[list[TimelinePoint]]:
    buckets: list[list[TimelinePoint]] = []
    for point in points:
        if not buckets or point.at - buckets[-1][0].at >= width_s:
            buckets.append([])
        buckets[-1].append(point)
    return buckets


def plot_reports(
    runs: Sequence[tuple[str, SimReport]],
    path: Path,
    latency_budget_s: float,
    bucket_s: float = 10.0,
    title: str = "",
) -> Path:
    """Load, hot/warming/pooled replicas and p99 latency over time, one column per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(runs), figsize=(4.2 * len(runs), 6.4), sharex=True, squeeze=False, dpi=70)
    for col, (name, report) in enumerate(runs):
        buckets = _bucket(report.timeline, bucket_s)
        minutes = [b[0].at / 60.0 for b in buckets]
        load_ax, replica_ax, latency_ax = axes[0][col], axes[1][col], axes[2][col]
        load_ax.plot(minutes, [sum(p.request_rate for p in b) / len(b) for b in buckets], lw=1)
        load_ax.set_title(name, fontsize=9)
        for label, attr in (("hot", "hot"), ("warming", "warming"), ("pooled", "pooled")):
            series = [max(getattr(p, attr) for p in b) for b in buckets]
            replica_ax.step(minutes, series, where="post", lw=1, label=label)
        latency = [
            max((p.p99_latency_s for p in b if p.p99_latency_s is not None), default=_FLOOR_S)
            for b in buckets
        ]
        latency_ax.plot(minutes, latency, lw=1)
        latency_ax.axhline(latency_budget_s, color="red", lw=0.8, ls="--")
        latency_ax.set_yscale("log")
        latency_ax.set_ylim(_FLOOR_S, max(60.0, 2 * latency_budget_s))
        latency_ax.set_xlabel("minutes")
        if col == 0:
            load_ax.set_ylabel("requests/s")
            replica_ax.set_ylabel("replicas")
            latency_ax.set_ylabel("p99 latency s")
            replica_ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
