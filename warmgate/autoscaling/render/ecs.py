"""ECS: task definition with a /ping health check, service behind a load balancer, auto scaling.

Each top-level key names the API call; its value is the keyword arguments, e.g.
``boto3.client("ecs").register_task_definition(**doc["RegisterTaskDefinition"])``.
ECS caps a health check's ``startPeriod`` at 300 s and ``stopTimeout`` at 120 s; longer
warmups rely on the service's ``healthCheckGracePeriodSeconds`` (the load balancer's checks are
ignored that long after a task starts), which is set to the whole start-up budget.

The service's target group is the one named in ``alb_resource_label``
(``app/<lb>/<id>/targetgroup/<tg>/<id>``); its ARN takes ``region`` and ``account_id``.
The tasks run on a capacity provider whose Auto Scaling group has a warm pool
(:mod:`.ec2_warm_pool`); those calls come first, in the order to apply them.
"""

from __future__ import annotations

import json
from typing import Any

from warmgate.autoscaling.render.ec2_warm_pool import capacity_provider_name, warm_pool_documents
from warmgate.autoscaling.render.options import RenderOptions

_ECS_MAX_START_PERIOD_S = 300
_ECS_MAX_STOP_TIMEOUT_S = 120


def ping_command(port: int) -> list[str]:
    """A health check with bash alone (no python, no curl in the image needed): GET /ping over
    bash's ``/dev/tcp``; exit 0 on HTTP 200 (READY), 1 on 503, a refused connection or 4 s of
    silence. The same check as the image's own ``warmgate-healthcheck``."""
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1; "
        "printf 'GET /ping HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3; "
        "IFS= read -r -t 4 status <&3 || exit 1; "
        'case "$status" in "HTTP/1."?" 200 "*) exit 0 ;; esac; exit 1'
    )
    return ["CMD", "bash", "-c", script]


def target_group_arn(options: RenderOptions) -> str:
    """The target group ARN for ``app/<lb>/<id>/targetgroup/<tg>/<id>`` in the options'
    region and account."""
    _, marker, group = options.alb_resource_label.partition("targetgroup/")
    if not marker:
        group = "REPLACE-ME/0123456789abcdef"
    return f"arn:aws:elasticloadbalancing:{options.region}:{options.account_id}:targetgroup/{group}"


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
        "CreateCluster": {"clusterName": options.name},
        **warm_pool_documents(options),
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
            # awsvpc: each task gets its own network interface in these subnets (the target
            # group's target type must be ip)
            "networkConfiguration": {
                "awsvpcConfiguration": {
                    "subnets": list(options.subnets),
                    "securityGroups": list(options.security_groups),
                }
            },
            "capacityProviderStrategy": [{"capacityProvider": capacity_provider_name(options), "weight": 1}],
            "loadBalancers": [
                {
                    "targetGroupArn": target_group_arn(options),
                    "containerName": options.name,
                    "containerPort": options.port,
                }
            ],
            # the load balancer's failed checks do not replace a task still loading + warming
            "healthCheckGracePeriodSeconds": options.startup_s,
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
