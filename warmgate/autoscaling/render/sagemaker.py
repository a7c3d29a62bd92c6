"""SageMaker: Application Auto Scaling target + target-tracking policy, endpoint config.

Each top-level key is the name of the API call and its value the exact keyword arguments
(``boto3.client("application-autoscaling").register_scalable_target(**doc[...])``).
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


def render_sagemaker(options: RenderOptions) -> str:
    return json.dumps(sagemaker_documents(options), indent=2) + "\n"
