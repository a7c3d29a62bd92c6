"""The fleet's registry exports every pool's member statuses, read from the store at scrape."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.fleet_store.conftest import OpenStore
from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.metrics import FleetMetrics
from warmgate.fleet.store import MatchKey

KEY = MatchKey.of("sha256:4444", "v1", "cpu")
OTHER = MatchKey.of("sha256:6666", "v1", "cpu")


def scrape(metrics: FleetMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("warmgate_pool_member")
    }


def test_the_fleet_exports_sagemaker_statuses_by_key_at_each_scrape(open_store: OpenStore) -> None:
    store = open_store(PoolConfig(max_size=4), lease_ttl_s=1e9)
    c = store.join("fleet", now=0.0).controller_id
    for member_id in ("a", "b", "c"):
        store.register(member_id, KEY, c, now=0.0)
        store.mark_ready(member_id, 1.0)
    store.register("w", OTHER, c, now=0.0)
    metrics = FleetMetrics()
    metrics.watch_store(store, clock=lambda: 10.0)

    store.claim(KEY, c, now=2.0)  # "a"
    store.release("a", c, now=3.0)  # Reused
    store.claim(KEY, c, now=4.0)  # "b": InUse
    store.mark_draining("c", "retired", now=5.0)  # Terminated
    key, other = KEY.digest[:12], OTHER.digest[:12]
    seen = scrape(metrics)
    status = "warmgate_pool_member_status"
    assert seen[(status, (("key", key), ("status", "Reused")))] == 1.0
    assert seen[(status, (("key", key), ("status", "InUse")))] == 1.0
    assert seen[(status, (("key", key), ("status", "Available")))] == 0.0
    assert seen[(status, (("key", other), ("status", "Warming")))] == 1.0
    assert seen[("warmgate_pool_members_terminated_total", (("key", key),))] == 1.0
    assert seen[("warmgate_pool_member_reuses_total", (("key", key),))] == 1.0

    store.mark_ready("w", 6.0)  # read again at the next scrape
    assert scrape(metrics)[(status, (("key", other), ("status", "Available")))] == 1.0
