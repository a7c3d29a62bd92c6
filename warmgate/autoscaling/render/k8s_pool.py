"""Kubernetes warm pool: a standby Deployment whose READY pods a controller promotes by label.

Labels (every pod has ``app.kubernetes.io/name: <name>``):

============================  ================================  ==============================
pod                           ``warmgate.io/deployment``        ``warmgate.io/role``
============================  ================================  ==============================
serving Deployment's          ``<name>``                        ``serving``
standby Deployment's          ``<name>-standby``                ``standby``
promoted standby              ``<name>-standby``                ``serving``
============================  ================================  ==============================

- The Service and the PodDisruptionBudget select ``role: serving``: the serving Deployment's
  pods and the promoted ones, never a standby.
- The standby Deployment selects ``deployment: <name>-standby, role: standby``. Promotion
  (:func:`promotion_patch`) sets ``role: serving`` on one READY standby: the pod leaves the
  standby ReplicaSet's selector, the ReplicaSet releases it (drops its ownerReference) and
  starts a replacement, so the pool refills itself; the endpoints controller adds the pod to
  the Service's EndpointSlices as ready at once, since it already passes its readiness probe.
- The serving Deployment selects ``deployment: <name>``, which a promoted pod never carries,
  so its ReplicaSet never adopts a promoted pod (and never scales one down in its place). The
  HPA scales that Deployment only and averages its metric over its own pods.
- A promoted pod belongs to no controller. The pool controller must delete it on scale-in
  (promoted pods first: they are the ones nothing else replaces), after a rollout (a promoted
  pod keeps the old template; its ``pod-template-hash`` names the standby ReplicaSet it came
  from), and nothing recreates it if its node goes away. Its kubelet still restarts its
  container when the liveness probe fails.
- The patch carries the pod's ``resourceVersion``: the API server refuses it (409 Conflict)
  when the pod changed since the controller read it, so two controllers racing for the same
  standby promote it once, and a standby that stopped being ready is not promoted blind.
- Standbys run, and are billed, like serving pods: a Kubernetes pod has no stopped state.
  With slim standbys (``RenderOptions.slim_standby_cores``) a READY standby is resized in
  place (``kubectl patch pod POD --subresource resize``, :func:`resize_patch`; Kubernetes
  1.35+, ``resizePolicy`` cpu ``NotRequired``: no restart) down to a sliver of CPU while it
  waits, its memory and its loaded model kept, and back to its full CPU first when promoted.
  Where pods are billed by their requests (GKE Autopilot), it then costs that sliver.
"""

from __future__ import annotations

from typing import Any

from warmgate.autoscaling.render.options import RenderOptions

APP_LABEL = "app.kubernetes.io/name"
DEPLOYMENT_LABEL = "warmgate.io/deployment"
ROLE_LABEL = "warmgate.io/role"
SERVING = "serving"
STANDBY = "standby"


def standby_name(name: str) -> str:
    return f"{name}-standby"


def controller_name(name: str) -> str:
    return f"{name}-pool-controller"


def app_labels(name: str) -> dict[str, str]:
    return {APP_LABEL: name}


def serving_labels(name: str) -> dict[str, str]:
    """What the Service and the PDB select: every pod that takes traffic."""
    return {APP_LABEL: name, ROLE_LABEL: SERVING}


def serving_pod_labels(name: str) -> dict[str, str]:
    """The serving Deployment's pods (and its selector)."""
    return {APP_LABEL: name, DEPLOYMENT_LABEL: name, ROLE_LABEL: SERVING}


def standby_labels(name: str) -> dict[str, str]:
    """The standby Deployment's pods (and its selector)."""
    return {APP_LABEL: name, DEPLOYMENT_LABEL: standby_name(name), ROLE_LABEL: STANDBY}


def promotion_patch(resource_version: str) -> dict[str, Any]:
    """The merge patch that promotes one READY standby pod read at ``resource_version``
    (``kubectl label pod POD warmgate.io/role=serving --overwrite --resource-version=RV``)."""
    return {"metadata": {"resourceVersion": resource_version, "labels": {ROLE_LABEL: SERVING}}}


def cpu_quantity(cores: float) -> str:
    """A Kubernetes CPU quantity in millicores: 2 cores is ``2000m``, a quarter ``250m``."""
    return f"{round(cores * 1000)}m"


def resize_patch(container: str, cores: float) -> dict[str, Any]:
    """The patch of a pod's ``resize`` subresource that sets ``container``'s CPU (requests and
    limits alike, so a Guaranteed pod stays Guaranteed) to ``cores``: down to the slim share
    once a standby is READY, up to its full CPU before its promotion."""
    cpu = cpu_quantity(cores)
    resources = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}
    return {"spec": {"containers": [{"name": container, "resources": resources}]}}


def controller_documents(options: RenderOptions) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for the pool controller: read, promote (patch) and
    delete pods; read Deployments and ReplicaSets (which template is current); resize the
    standby Deployment only; with slim standbys, resize pods in place."""
    name, account = options.name, controller_name(options.name)
    metadata = {"name": account, "labels": app_labels(name)}
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch", "delete"]},
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "replicasets"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments/scale"],
            "resourceNames": [standby_name(name)],
            "verbs": ["get", "patch", "update"],
        },
    ]
    if options.slim_standby_cores is not None:
        rules.append({"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]})
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": dict(metadata, labels=app_labels(name)),
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": dict(metadata, labels=app_labels(name)),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account}],
    }
    service_account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": dict(metadata, labels=app_labels(name)),
    }
    return [service_account, role, binding]
