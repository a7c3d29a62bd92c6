"""Kubernetes: Deployment (probes, preStop, grace), Service, HPA (autoscaling/v2), PDB.

The startup probe is ``/livez`` with a budget of ``startup_s`` (load + warmup): ``/livez`` answers
200 as soon as the listener opens and stays 200 while weights load and warm, and 503 once a load
or warmup FAILS (a warmup that hangs becomes FAILED at ``WARMGATE_WARMUP_TIMEOUT``), so the
budget never cuts a slow but healthy start short, and a failed one is restarted by the liveness
probe on the same route. Readiness is ``/ping`` (503 until READY, while DEGRADED and while
draining), so no traffic reaches a replica before its warmup is done.
On deletion the pod's
preStop hook waits the drain delay while endpoints stop routing to it, then SIGTERM starts the
server's own drain; ``terminationGracePeriodSeconds`` covers both plus the longest request.
"""

from __future__ import annotations

from typing import Any

import yaml

from warmgate.autoscaling.render.options import RenderOptions


def _probe(path: str, port: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _labels(name: str) -> dict[str, str]:
    """A fresh dict each time, so the YAML has no anchors."""
    return {"app.kubernetes.io/name": name}


def k8s_documents(options: RenderOptions) -> list[dict[str, Any]]:
    name, port = options.name, options.port
    container = {
        "name": name,
        "image": options.image,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": port}],
        "env": [
            {"name": "WARMGATE_PORT", "value": str(port)},
            {"name": "WARMGATE_DRAIN_DELAY", "value": str(options.drain_delay_s)},
        ],
        "startupProbe": _probe("/livez", port, 5, options.probe_failures_for_startup),
        "readinessProbe": _probe("/ping", port, 5, 1),
        "livenessProbe": _probe("/livez", port, 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(options.drain_delay_s)]}}},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "replicas": options.min_hot,
            "selector": {"matchLabels": _labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {
                    "terminationGracePeriodSeconds": options.termination_grace_s,
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "selector": _labels(name),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": options.min_hot,
            "maxReplicas": options.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "warmgate_requests_in_flight"},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": str(options.in_flight_per_replica),
                        },
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": options.scale_in_cooldown_s,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {"minAvailable": options.min_hot, "selector": {"matchLabels": _labels(name)}},
    }
    return [deployment, service, hpa, pdb]


def render_k8s(options: RenderOptions) -> str:
    text: str = yaml.safe_dump_all(k8s_documents(options), sort_keys=False)
    return text
