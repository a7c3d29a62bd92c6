"""A replica model from a live replica's own ``/metrics`` (Prometheus text), parsed offline.

- ``warmgate_model_load_seconds`` → ``load_s``;
- the sum of ``warmgate_warmup_seconds`` over every shape → ``warmup_s``;
- ``warmgate_warmup_steady_latency_seconds`` of the shapes named ``batch-N-...`` → the service
  curve: N requests served together each take that shape's converged latency. ``service_s``
  becomes the smallest batch's latency and ``concurrency`` the largest batch.

Everything else (provision time, queue depth, claim time) is kept from ``base``: a replica
cannot see how long its host took to provision. Fetching the text is the caller's business
(``curl http://replica/metrics > replica.prom``), so this module stays pure.
"""

from __future__ import annotations

import dataclasses
import re

from prometheus_client.parser import text_string_to_metric_families

from warmgate.autoscaling.scenario import ReplicaModel
from warmgate.errors import ConfigError

LOAD = "warmgate_model_load_seconds"
WARMUP = "warmgate_warmup_seconds"
STEADY = "warmgate_warmup_steady_latency_seconds"
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
