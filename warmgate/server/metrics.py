"""Prometheus metrics (names carry their units). One registry per app, so tests stay isolated."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from warmgate.models.base import ModelStats
from warmgate.models.memory import peak_rss_bytes
from warmgate.server.lifecycle import Phase

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class _ModelStatsCollector(Collector):
    """Exports the backend's own counters (CUDA graphs, eager runs) at scrape time."""

    def __init__(self, stats: Callable[[], ModelStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats() or ModelStats()
        for name, value, doc in (
            ("warmgate_cuda_graphs_captured", stats.graphs_captured, "CUDA graphs captured"),
            ("warmgate_cuda_graphs_replayed", stats.graphs_replayed, "CUDA graph replays"),
            ("warmgate_cuda_graphs_missed", stats.graphs_missed, "batches with no captured graph"),
            ("warmgate_eager_runs", stats.eager_runs, "batches run eagerly"),
            (
                "warmgate_out_of_bucket_requests",
                stats.out_of_bucket,
                "requests larger than every bucket",
            ),
        ):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        memory = stats.extra.get("memory_bytes")
        if memory is not None:
            yield GaugeMetricFamily(
                "warmgate_model_memory_bytes",
                "resident memory the model's load added to the process (weights, session, tokenizer)",
                value=memory,
            )


class Metrics:
    def __init__(self, stats: Callable[[], ModelStats | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "warmgate_request_duration_seconds",
            "HTTP request duration",
            ["route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "warmgate_requests_received",
            "inference requests received (warmup's own loopback requests excluded), by the phase "
            "the replica was in when each arrived",
            ["route", "phase"],
            registry=r,
        )
        self.in_flight = Gauge("warmgate_requests_in_flight", "inference requests admitted", registry=r)
        self.queue_depth = Gauge(
            "warmgate_queue_depth", "requests waiting for the inference thread", registry=r
        )
        self.batch_size = Histogram(
            "warmgate_batch_size_rows", "rows per executed batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.phase = Gauge("warmgate_phase", "1 for the current lifecycle phase", ["phase"], registry=r)
        self.model_load_seconds = Gauge(
            "warmgate_model_load_seconds", "time spent loading the model", registry=r
        )
        self.warmup_seconds = Gauge("warmgate_warmup_seconds", "warmup time per shape", ["shape"], registry=r)
        self.warmup_steady_seconds = Gauge(
            "warmgate_warmup_steady_latency_seconds",
            "converged latency per shape",
            ["shape"],
            registry=r,
        )
        self.keep_warm_runs = Counter(
            "warmgate_keep_warm_runs",
            "runs of the last warmup request between READY and the first request (--keep-warm-s)",
            registry=r,
        )
        self.rejected = Counter(
            "warmgate_admission_rejected",
            "requests refused by admission control",
            ["reason"],
            registry=r,
        )
        r.register(_ModelStatsCollector(stats))
        # process_resident_memory_bytes, process_cpu_seconds_total, ... (Linux /proc)
        ProcessCollector(registry=r)
        self.peak_rss = Gauge(
            "warmgate_process_peak_resident_memory_bytes",
            "the largest resident set size this process has had",
            registry=r,
        )
        self.peak_rss.set_function(peak_rss_bytes)
        self.set_phase(Phase.STARTING)

    def set_phase(self, phase: Phase) -> None:
        for p in Phase:
            self.phase.labels(p.value).set(1 if p is phase else 0)
