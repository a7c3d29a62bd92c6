"""SageMaker: Application Auto Scaling target + target-tracking policy, endpoint config.

Each top-level key is the name of the API call and its value the exact keyword arguments
(``boto3.client("application-autoscaling").register_scalable_target(**doc[...])``).

SageMaker has no warm pool for real-time endpoints (its Managed Warm Pools keep training-job
clusters alive between jobs): nothing can hold a stopped or pre-warmed standby for an endpoint.
What it can express is a floor of hot capacity, two ways:

- the instance variant (:func:`sagemaker_documents`): ``MinCapacity`` on
  ``sagemaker:variant:DesiredInstanceCount``;
- inference components (:func:`inference_component_documents`, ``inference_components``):
  ``MinCapacity`` on ``sagemaker:inference-component:DesiredCopyCount`` keeps that many copies
  of the model loaded, and the variant's ``ManagedInstanceScaling`` ``MinInstanceCount`` keeps
  the instances under them. One copy per instance is assumed (a copy asks for the task's cpu
  and memory). A new copy is cold: SageMaker routes to it only once its ``/ping`` answers 200,
  within ``ContainerStartupHealthCheckTimeoutInSeconds``.
"""

from __future__ import annotations

import json
from typing import Any

from warmgate.autoscaling.render.options import RenderOptions


def sagemaker_documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    resource_id = f"endpoint/{options.name}/variant/AllTraffic"
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id,
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    return {
        "RegisterScalableTarget": {
            **target,
            "MinCapacity": options.min_hot,
            "MaxCapacity": options.max_replicas,
        },
        "PutScalingPolicy": {
            **target,
            "PolicyName": f"{options.name}-invocations-per-instance",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": options.invocations_per_minute,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleOutCooldown": options.scale_out_cooldown_s,
                "ScaleInCooldown": options.scale_in_cooldown_s,
                "DisableScaleIn": False,
            },
        },
        "CreateEndpointConfig": {
            "EndpointConfigName": f"{options.name}-config",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": options.name,
                    "InstanceType": options.instance_type,
                    "InitialInstanceCount": options.min_hot,
                    "ContainerStartupHealthCheckTimeoutInSeconds": options.startup_s,
                    "ModelDataDownloadTimeoutInSeconds": options.startup_s,
                }
            ],
        },
    }


def inference_component_name(options: RenderOptions) -> str:
    return f"{options.name}-model"


def inference_component_documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    """An inference-component endpoint: a variant without a model whose instances scale with
    the copies placed on them, one component of ``min_hot`` copies scaled on concurrent
    requests per copy (a high-resolution metric: the in-flight target, unit for unit)."""
    component = inference_component_name(options)
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"inference-component/{component}",
        "ScalableDimension": "sagemaker:inference-component:DesiredCopyCount",
    }
    return {
        "CreateEndpointConfig": {
            "EndpointConfigName": f"{options.name}-config",
            # inference components need the endpoint config's own execution role
            "ExecutionRoleArn": f"arn:aws:iam::{options.account_id}:role/{options.name}-sagemaker",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "InstanceType": options.instance_type,
                    "InitialInstanceCount": options.min_hot,
                    "ManagedInstanceScaling": {
                        "Status": "ENABLED",
                        "MinInstanceCount": options.min_hot,
                        "MaxInstanceCount": options.max_replicas,
                    },
                    "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
                }
            ],
        },
        "CreateEndpoint": {"EndpointName": options.name, "EndpointConfigName": f"{options.name}-config"},
        "CreateInferenceComponent": {
            "InferenceComponentName": component,
            "EndpointName": options.name,
            "VariantName": "AllTraffic",
            "Specification": {
                "ModelName": options.name,
                "StartupParameters": {
                    "ModelDataDownloadTimeoutInSeconds": options.startup_s,
                    "ContainerStartupHealthCheckTimeoutInSeconds": options.startup_s,
                },
                "ComputeResourceRequirements": {
                    "NumberOfCpuCoresRequired": options.cpu_units / 1024,
                    "MinMemoryRequiredInMb": options.memory_mib,
                },
            },
            "RuntimeConfig": {"CopyCount": options.min_hot},
        },
        "RegisterScalableTarget": {
            **target,
            "MinCapacity": options.min_hot,
            "MaxCapacity": options.max_replicas,
        },
        "PutScalingPolicy": {
            **target,
            "PolicyName": f"{options.name}-concurrent-requests-per-copy",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": options.in_flight_per_replica,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": (
                        "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
                    )
                },
                "ScaleOutCooldown": options.scale_out_cooldown_s,
                "ScaleInCooldown": options.scale_in_cooldown_s,
                "DisableScaleIn": False,
            },
        },
    }


def render_sagemaker(options: RenderOptions) -> str:
    documents = (
        inference_component_documents(options)
        if options.inference_components
        else sagemaker_documents(options)
    )
    return json.dumps(documents, indent=2) + "\n"
