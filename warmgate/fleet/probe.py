"""Observe one replica over HTTP: its phase (``/readyz``), in-flight work and requests served
(``/metrics``). Parsing is pure; :func:`probe` does the two GETs.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from warmgate.autoscaling.model import ReplicaPhase

IN_FLIGHT = "warmgate_requests_in_flight"
QUEUE_DEPTH = "warmgate_queue_depth"
DURATION_COUNT = "warmgate_request_duration_seconds_count"
INVOCATIONS_ROUTE = "/invocations"

# The server's lifecycle words, coarsened to the policy's phases. STARTING and LOADING are
# warming (not hot); STOPPED is the tail of draining. An unknown word is treated as warming:
# never counted as hot.
_PHASES: dict[str, ReplicaPhase] = {
    "starting": ReplicaPhase.WARMING,
    "loading": ReplicaPhase.WARMING,
    "warming": ReplicaPhase.WARMING,
    "ready": ReplicaPhase.READY,
    "draining": ReplicaPhase.DRAINING,
    "stopped": ReplicaPhase.DRAINING,
    "failed": ReplicaPhase.FAILED,
}


@dataclass(frozen=True)
class Load:
    """What ``/metrics`` says about traffic."""

    in_flight: int = 0
    invocations: int = 0  # /invocations responses so far, every status
    waiting: int = 0  # admitted, not yet started (the server's queue depth)


@dataclass(frozen=True)
class Probe:
    """One look at a replica. ``phase`` is None when nothing answered (not listening yet or any more)."""

    phase: ReplicaPhase | None
    reported: str = ""  # the server's own phase word
    load: Load = Load()
    reason: str = ""  # the server's reason for its phase (why it FAILED, for one)


def phase_of(word: str) -> ReplicaPhase:
    return _PHASES.get(word, ReplicaPhase.WARMING)


def parse_metrics(text: str) -> Load:
    """In-flight and queue-depth gauges and the ``/invocations`` count from Prometheus text."""
    in_flight = 0.0
    invocations = 0.0
    waiting = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == IN_FLIGHT:
                in_flight = sample.value
            elif sample.name == QUEUE_DEPTH:
                waiting = sample.value
            elif sample.name == DURATION_COUNT and sample.labels.get("route") == INVOCATIONS_ROUTE:
                invocations += sample.value
    return Load(int(in_flight), int(invocations), int(waiting))


def probe(client: httpx.Client, base_url: str) -> Probe:
    """GET ``/readyz`` (200 or 503, both carry ``phase``) and ``/metrics``."""
    try:
        ready = client.get(base_url + "/readyz")
        metrics = client.get(base_url + "/metrics")
    except httpx.TransportError:
        return Probe(None)
    body = ready.json()
    word = str(body.get("phase", ""))
    load = parse_metrics(metrics.text) if metrics.status_code == 200 else Load()
    return Probe(phase_of(word), word, load, str(body.get("reason") or ""))
