"""The Kubernetes YAML passes the OpenAPI schema of a recent Kubernetes release (strict: no
unknown field) and loads into the official client's models without losing a field."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from warmgate.autoscaling.render import Engine, RenderOptions, render

MODELS = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
}
KINDS = [
    "Deployment",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Role",
    "RoleBinding",
]


def documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    """By kind; the standby Deployment under ``Deployment/standby``."""
    docs: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(render(Engine.K8S, options)):
        standby = doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith("-standby")
        docs["Deployment/standby" if standby else doc["kind"]] = doc
    return docs


#: The newest Kubernetes release whose OpenAPI schema kubernetes-validate bundles.
K8S_VERSION = kubernetes_validate.latest_version()


@pytest.mark.parametrize(
    "options",
    [
        RenderOptions(),
        RenderOptions(name="emb-v3", port=9000, drain_delay_s=0, startup_s=60, cpu_units=1536),
        RenderOptions(slim_standby_cores=0.25),
    ],
    ids=["defaults", "edges", "slim"],
)
def test_every_document_passes_the_kubernetes_schema(options: RenderOptions) -> None:
    docs = list(yaml.safe_load_all(render(Engine.K8S, options)))
    assert [d["kind"] for d in docs] == KINDS
    for doc in docs:
        # raises ValidationError naming the path of a missing, mistyped or unknown field
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_misplaced_field() -> None:
    deployment = documents(RenderOptions())["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["startupProbe"]["httpGet"]["port"] = [8080]  # neither a number nor a port name
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    container["startupProbe"]["httpGet"]["port"] = 8080
    container["readinessProbes"] = container.pop("readinessProbe")  # a misspelt key
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.parametrize("slim", [None, 0.25], ids=["full", "slim"])
@pytest.mark.parametrize("key", [*sorted(MODELS), "Deployment/standby"])
def test_every_document_round_trips_through_the_client_models(key: str, slim: float | None) -> None:
    doc = documents(RenderOptions(slim_standby_cores=slim))[key]
    api = client.ApiClient()
    model = api.deserialize(json.dumps(doc), MODELS[doc["kind"]], "application/json")
    # a misspelt or misplaced key would be dropped by the model and fail this comparison
    assert api.sanitize_for_serialization(model) == doc  # type: ignore[no-untyped-call]


def test_probes_and_termination_match_the_server() -> None:
    options = RenderOptions(drain_delay_s=7, timeout_s=30, startup_s=600)
    pod = documents(options)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # /livez passes while loading and warming; the budget covers load + warmup (startup_s)
    assert container["startupProbe"]["httpGet"] == {"path": "/livez", "port": 8080}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # traffic only once READY: /ping is 503 while warming and draining
    assert container["readinessProbe"]["httpGet"] == {"path": "/ping", "port": 8080}
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
