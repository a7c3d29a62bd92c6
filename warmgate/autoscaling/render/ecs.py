"""ECS: task definition with a /ping health check, service, service auto scaling.

Each top-level key names the API call; its value is the keyword arguments, e.g.
``boto3.client("ecs").register_task_definition(**doc["RegisterTaskDefinition"])``.
ECS caps a health check's ``startPeriod`` at 300 s and ``stopTimeout`` at 120 s; longer
warmups should rely on the load balancer's health-check grace period as well.
"""

from __future__ import annotations

import json
from typing import Any

from warmgate.autoscaling.render.options import RenderOptions

_ECS_MAX_START_PERIOD_S = 300
_ECS_MAX_STOP_TIMEOUT_S = 120


def ping_command(port: int) -> list[str]:
    """A health check that needs only the image's Python: exit 0 on HTTP 200, else 1."""
    script = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    urllib.request.urlopen('http://127.0.0.1:{port}/ping', timeout=4)\n"
        "except OSError:  # URLError, HTTPError (503 while warming), timeouts\n"
        "    sys.exit(1)\n"
    )
    return ["CMD", "python", "-c", script]


def ecs_documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    resource_id = f"service/{options.name}/{options.name}"
    target = {
        "ServiceNamespace": "ecs",
        "ResourceId": resource_id,
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    container = {
        "name": options.name,
        "image": options.image,
        "essential": True,
        "command": ["serve"],
        "portMappings": [{"containerPort": options.port, "protocol": "tcp"}],
        "environment": [
            {"name": "WARMGATE_PORT", "value": str(options.port)},
            {"name": "WARMGATE_DRAIN_DELAY", "value": str(options.drain_delay_s)},
        ],
        "healthCheck": {
            "command": ping_command(options.port),
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": min(options.startup_s, _ECS_MAX_START_PERIOD_S),
        },
        "stopTimeout": min(options.termination_grace_s, _ECS_MAX_STOP_TIMEOUT_S),
    }
    return {
        "RegisterTaskDefinition": {
            "family": options.name,
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["EC2"],
            "cpu": str(options.cpu_units),
            "memory": str(options.memory_mib),
            "containerDefinitions": [container],
        },
        "CreateService": {
            "cluster": options.name,
            "serviceName": options.name,
            "taskDefinition": options.name,
            "desiredCount": options.min_hot,
            "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200},
        },
        "RegisterScalableTarget": {
            **target,
            "MinCapacity": options.min_hot,
            "MaxCapacity": options.max_replicas,
        },
        "PutScalingPolicy": {
            **target,
            "PolicyName": f"{options.name}-requests-per-target",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": options.invocations_per_minute,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ALBRequestCountPerTarget",
                    "ResourceLabel": options.alb_resource_label,
                },
                "ScaleOutCooldown": options.scale_out_cooldown_s,
                "ScaleInCooldown": options.scale_in_cooldown_s,
            },
        },
    }


def render_ecs(options: RenderOptions) -> str:
    return json.dumps(ecs_documents(options), indent=2) + "\n"
