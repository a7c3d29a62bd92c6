"""The pool members' statuses as Prometheus metrics, read from a store at each scrape.

SageMaker's warm-pool statuses mapped onto ours (:mod:`.status`), labelled by the key id (the
first 12 hex digits of the match key's SHA-256, as ``warmgate pool status`` shows it):

- ``warmgate_pool_member_status{key,status}`` (gauge): members now ``Warming``,
  ``Available`` (READY, never reused), ``Reused`` (READY again after a reuse), ``InUse``
  (CLAIMED);
- ``warmgate_pool_members_terminated_total{key}`` (counter): members that ended (ERRORED or
  DRAINING), from the history;
- ``warmgate_pool_member_reuses_total{key}`` (counter): claimed members released back to READY.

Counters restart from zero when a pool is deleted (its history goes with it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from warmgate.fleet.store.protocol import PoolStore
from warmgate.fleet.store.status import WarmPoolStatus

CURRENT = (WarmPoolStatus.WARMING, WarmPoolStatus.AVAILABLE, WarmPoolStatus.REUSED, WarmPoolStatus.IN_USE)


class PoolStatusCollector(Collector):
    """Collects every pool's member statuses from ``store`` when scraped; ``clock`` is the
    store's clock (wall-clock seconds for a shared store)."""

    def __init__(self, store: PoolStore, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        current = GaugeMetricFamily(
            "warmgate_pool_member_status",
            "pool members now, by SageMaker warm-pool status (Warming is ours)",
            labels=["key", "status"],
        )
        terminated = CounterMetricFamily(
            "warmgate_pool_members_terminated", "pool members that ended (errored or drained)", labels=["key"]
        )
        reuses = CounterMetricFamily(
            "warmgate_pool_member_reuses", "claimed members released back to READY", labels=["key"]
        )
        for pool in self._store.status(self._clock()):
            for status in CURRENT:
                current.add_metric([pool.key_id, status.value], pool.statuses[status])
            terminated.add_metric([pool.key_id], pool.statuses[WarmPoolStatus.TERMINATED])
            reuses.add_metric([pool.key_id], pool.reuses)
        yield current
        yield terminated
        yield reuses
