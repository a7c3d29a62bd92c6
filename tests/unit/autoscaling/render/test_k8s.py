"""The Kubernetes YAML loads into the official client's models without losing a field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from kubernetes import client

from warmgate.autoscaling.render import Engine, RenderOptions, render

MODELS = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
}


def documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in yaml.safe_load_all(render(Engine.K8S, options))}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_document_round_trips_through_the_client_models(kind: str) -> None:
    doc = documents(RenderOptions())[kind]
    api = client.ApiClient()
    model = api.deserialize(json.dumps(doc), MODELS[kind], "application/json")
    # a misspelt or misplaced key would be dropped by the model and fail this comparison
    assert api.sanitize_for_serialization(model) == doc  # type: ignore[no-untyped-call]


def test_probes_and_termination_match_the_server() -> None:
    options = RenderOptions(drain_delay_s=7, timeout_s=30, startup_s=600)
    pod = documents(options)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["startupProbe"]["httpGet"] == {"path": "/ping", "port": 8080}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "7"]
    assert {"name": "WARMGATE_DRAIN_DELAY", "value": "7"} in container["env"]
    # preStop wait 7 + server drain 7 + longest request 30 + 5 s slack
    assert pod["terminationGracePeriodSeconds"] == 49


def test_hpa_and_pdb_keep_two_hot() -> None:
    docs = documents(RenderOptions())
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    assert docs["Deployment"]["spec"]["replicas"] == 2
