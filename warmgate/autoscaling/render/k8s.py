"""Kubernetes: serving and standby Deployments (probes, preStop, grace), Service, HPA
(autoscaling/v2), PDB, and the pool controller's RBAC (:mod:`.k8s_pool`).

The startup probe is ``/livez`` with a budget of ``startup_s`` (load + warmup): ``/livez`` answers
200 as soon as the listener opens and stays 200 while weights load and warm, and 503 once a load
or warmup FAILS (a warmup that hangs becomes FAILED at ``WARMGATE_WARMUP_TIMEOUT``), so the
budget never cuts a slow but healthy start short, and a failed one is restarted by the liveness
probe on the same route. Readiness is ``/ping`` (503 until READY, while DEGRADED and while
draining), so no traffic reaches a replica before its warmup is done.
On deletion the pod's
preStop hook waits the drain delay while endpoints stop routing to it, then SIGTERM starts the
server's own drain; ``terminationGracePeriodSeconds`` covers both plus the longest request.

The warm pool is a second Deployment, ``<name>-standby``, with the same pod template but for
its labels (see :mod:`.k8s_pool` for the labels, the promotion and what follows from it).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from warmgate.autoscaling.render.k8s_pool import (
    app_labels,
    controller_documents,
    cpu_quantity,
    serving_labels,
    serving_pod_labels,
    standby_labels,
    standby_name,
)
from warmgate.autoscaling.render.options import RenderOptions


def _probe(path: str, port: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def k8s_documents(options: RenderOptions) -> list[dict[str, Any]]:
    name, port = options.name, options.port
    env = [
        {"name": "WARMGATE_PORT", "value": str(port)},
        {"name": "WARMGATE_DRAIN_DELAY", "value": str(options.drain_delay_s)},
    ]
    resources = {"cpu": cpu_quantity(options.cores), "memory": f"{options.memory_mib}Mi"}
    container: dict[str, Any] = {
        "name": name,
        "image": options.image,
        "args": ["serve"],
        "ports": [{"name": "http", "containerPort": port}],
        "env": env,
        "startupProbe": _probe("/livez", port, 5, options.probe_failures_for_startup),
        "readinessProbe": _probe("/ping", port, 5, 1),
        "livenessProbe": _probe("/livez", port, 10, 3),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(options.drain_delay_s)]}}},
        # requests = limits: a Guaranteed pod, which stays Guaranteed through a CPU resize
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    if options.slim_standby_cores is not None:  # slim standbys: CPU resized in place, no restart
        container["resizePolicy"] = [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"},
        ]
    pod_spec = {"terminationGracePeriodSeconds": options.termination_grace_s, "containers": [container]}
    deployment = _deployment(name, name, options.min_hot, serving_pod_labels(name), pod_spec)
    # A standby takes no traffic until promoted: no keep-warm from READY (the promotion re-arms
    # it with POST /warmgate/keep-warm, as `warmgate fleet` does on a claim).
    standby_container = copy.deepcopy(container)
    standby_container["env"] = [*env, {"name": "WARMGATE_KEEP_WARM_AT_READY", "value": "0"}]
    standby_spec = {**pod_spec, "containers": [standby_container]}
    standby = _deployment(
        standby_name(name), name, options.pool_target_size, standby_labels(name), standby_spec
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": app_labels(name)},
        # serving pods only: the serving Deployment's and the promoted standbys. Never
        # publishNotReadyAddresses: readiness (/ping) must gate every endpoint.
        "spec": {
            "selector": serving_labels(name),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": app_labels(name)},
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
    # every serving pod, promoted ones too (an integer minAvailable works for pods without a
    # controller); standbys are not protected: evicting one only costs the pool a refill
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": app_labels(name)},
        "spec": {"minAvailable": options.min_hot, "selector": {"matchLabels": serving_labels(name)}},
    }
    return [deployment, standby, service, hpa, pdb, *controller_documents(options)]


def _deployment(
    name: str, app: str, replicas: int, pod_labels: dict[str, str], pod_spec: dict[str, Any]
) -> dict[str, Any]:
    """A Deployment whose selector is its pods' labels, all of them (fresh dicts, no YAML
    anchors)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": app_labels(app)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(pod_labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": dict(pod_labels)},
                "spec": copy.deepcopy(pod_spec),
            },
        },
    }


def render_k8s(options: RenderOptions) -> str:
    text: str = yaml.safe_dump_all(k8s_documents(options), sort_keys=False)
    return text
