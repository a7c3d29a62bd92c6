"""The standby Deployment and its promotion, checked on the rendered objects: the selectors of
both ReplicaSets, the Service, the PDB and the HPA's target against a pod's labels before and
after the promotion patch."""

from __future__ import annotations

from typing import Any

import yaml

from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.k8s_pool import promotion_patch, resize_patch
from warmgate.autoscaling.scenario import DEFAULT_SCALING


def rendered(options: RenderOptions) -> dict[str, dict[str, Any]]:
    """The documents by ``kind/name``."""
    docs = yaml.safe_load_all(render(Engine.K8S, options))
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (a Service's map, or a ``matchLabels`` selector) against labels."""
    if "matchLabels" in selector or "matchExpressions" in selector:
        assert "matchExpressions" not in selector, "this simulation covers matchLabels only"
        selector = selector["matchLabels"]
    return all(labels.get(key) == value for key, value in selector.items())


def replica_set_selector(deployment: dict[str, Any]) -> dict[str, str]:
    """What the Deployment controller gives its ReplicaSet: the Deployment's selector plus the
    ``pod-template-hash`` of the template (any value unique to the Deployment will do here)."""
    selector = dict(deployment["spec"]["selector"]["matchLabels"])
    return {**selector, "pod-template-hash": f"hash-of-{deployment['metadata']['name']}"}


def pod_of(deployment: dict[str, Any]) -> dict[str, str]:
    """The labels of a pod that the Deployment's ReplicaSet created."""
    labels = dict(deployment["spec"]["template"]["metadata"]["labels"])
    return {**labels, "pod-template-hash": f"hash-of-{deployment['metadata']['name']}"}


def promote(labels: dict[str, str], resource_version: str) -> dict[str, str]:
    """Apply the promotion merge patch to a pod's labels (RFC 7386: keys given replace)."""
    patch = promotion_patch(resource_version)
    assert patch["metadata"]["resourceVersion"] == resource_version  # the API server's precondition
    return {**labels, **patch["metadata"]["labels"]}


def who_selects(docs: dict[str, dict[str, Any]], labels: dict[str, str]) -> set[str]:
    serving, standby = docs["Deployment/emb"], docs["Deployment/emb-standby"]
    hpa_target = docs[f"Deployment/{docs['HorizontalPodAutoscaler/emb']['spec']['scaleTargetRef']['name']}"]
    selectors = {
        "serving ReplicaSet": replica_set_selector(serving),
        "standby ReplicaSet": replica_set_selector(standby),
        "Service": docs["Service/emb"]["spec"]["selector"],
        "PDB": docs["PodDisruptionBudget/emb"]["spec"]["selector"],
        "HPA": hpa_target["spec"]["selector"],
    }
    return {who for who, selector in selectors.items() if matches(selector, labels)}


def test_a_standby_takes_no_traffic_until_promoted_then_leaves_its_replica_set() -> None:
    docs = rendered(RenderOptions(name="emb"))
    standby = pod_of(docs["Deployment/emb-standby"])
    assert who_selects(docs, standby) == {"standby ReplicaSet"}

    promoted = promote(standby, resource_version="4711")
    # out of the standby ReplicaSet (it starts a replacement), adopted by no ReplicaSet, in the
    # Service and the PDB; the HPA's average stays over the serving Deployment's own pods
    assert who_selects(docs, promoted) == {"Service", "PDB"}


def test_a_serving_pod_is_owned_served_and_protected() -> None:
    docs = rendered(RenderOptions(name="emb"))
    serving = pod_of(docs["Deployment/emb"])
    assert who_selects(docs, serving) == {"serving ReplicaSet", "Service", "PDB", "HPA"}


def test_every_deployment_selects_its_own_template() -> None:
    # the API server refuses a Deployment whose selector does not match its template
    for key, doc in rendered(RenderOptions(name="emb")).items():
        if doc["kind"] == "Deployment":
            assert matches(doc["spec"]["selector"], doc["spec"]["template"]["metadata"]["labels"]), key


def test_standby_pods_run_the_serving_pods_spec_with_the_same_probes_and_no_keep_warm_at_ready() -> None:
    docs = rendered(RenderOptions(name="emb", startup_s=900))
    serving = docs["Deployment/emb"]["spec"]["template"]["spec"]
    standby = docs["Deployment/emb-standby"]["spec"]["template"]["spec"]
    (container,) = standby["containers"]
    off = {"name": "WARMGATE_KEEP_WARM_AT_READY", "value": "0"}
    assert container["env"] == [*serving["containers"][0]["env"], off]  # promotion re-arms it
    assert {**standby, "containers": [{**container, "env": serving["containers"][0]["env"]}]} == serving
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert "publishNotReadyAddresses" not in docs["Service/emb"]["spec"]


def test_the_pool_size_comes_from_the_pool_config() -> None:
    options = RenderOptions.from_scaling(DEFAULT_SCALING, PoolConfig(target_size=3), name="emb")
    docs = rendered(options)
    assert docs["Deployment/emb-standby"]["spec"]["replicas"] == 3
    assert docs["Deployment/emb"]["spec"]["replicas"] == DEFAULT_SCALING.min_hot


def test_the_controller_may_promote_and_delete_pods_and_resize_only_the_pool() -> None:
    docs = rendered(RenderOptions(name="emb"))
    binding = docs["RoleBinding/emb-pool-controller"]
    (subject,) = binding["subjects"]
    assert f"ServiceAccount/{subject['name']}" in docs
    role = docs[f"Role/{binding['roleRef']['name']}"]
    pods = next(rule for rule in role["rules"] if rule["resources"] == ["pods"])
    assert set(pods["verbs"]) == {"get", "list", "watch", "patch", "delete"}
    scale = next(rule for rule in role["rules"] if rule["resources"] == ["deployments/scale"])
    assert [f"Deployment/{name}" for name in scale["resourceNames"]] == ["Deployment/emb-standby"]
    assert all("create" not in rule["verbs"] for rule in role["rules"])


def test_slim_standbys_are_resized_in_place_by_the_controller_without_a_restart() -> None:
    full, slim = (
        rendered(RenderOptions(name="emb")),
        rendered(RenderOptions(name="emb", slim_standby_cores=0.25)),
    )
    for docs in (full, slim):
        for deployment in ("Deployment/emb", "Deployment/emb-standby"):
            (container,) = docs[deployment]["spec"]["template"]["spec"]["containers"]
            # Guaranteed: requests equal limits (2048 ECS units are 2 cores), so a resize keeps it so
            assert container["resources"]["requests"] == container["resources"]["limits"]
            assert container["resources"]["requests"] == {"cpu": "2000m", "memory": "8192Mi"}
            policy = {p["resourceName"]: p["restartPolicy"] for p in container.get("resizePolicy", [])}
            assert policy == ({"cpu": "NotRequired", "memory": "NotRequired"} if docs is slim else {})

    def may_resize(docs: dict[str, dict[str, Any]]) -> bool:
        rules = docs["Role/emb-pool-controller"]["rules"]
        return any(r["resources"] == ["pods/resize"] and r["verbs"] == ["patch"] for r in rules)

    assert may_resize(slim) and not may_resize(full)
    # down to a quarter core once READY, back to 2 before the promotion: requests and limits alike
    down = resize_patch("emb", 0.25)["spec"]["containers"][0]
    assert down == {"name": "emb", "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "250m"}}}
    assert resize_patch("emb", 2.0)["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "2000m"}
