"""The ECS documents register under boto3 + moto; the health check covers warmup."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.ecs import ecs_documents, ping_command


@pytest.mark.usefixtures("aws")
def test_task_definition_service_and_scaling_register() -> None:
    docs = json.loads(render(Engine.ECS, RenderOptions(name="emb", image="repo/emb:1")))
    ecs = boto3.client("ecs", region_name="us-east-1")
    task = ecs.register_task_definition(**docs["RegisterTaskDefinition"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["portMappings"][0]["containerPort"] == 8080
    check = container["healthCheck"]
    assert "/ping" in check["command"][-1]
    assert check["startPeriod"] == 300  # covers warmup, capped at ECS's maximum

    ecs.create_cluster(clusterName="emb")
    service = ecs.create_service(**docs["CreateService"])["service"]
    assert service["desiredCount"] == 2

    scaling = boto3.client("application-autoscaling", region_name="us-east-1")
    scaling.register_scalable_target(**docs["RegisterScalableTarget"])
    scaling.put_scaling_policy(**docs["PutScalingPolicy"])
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"]) == ("service/emb/emb", 2)


def test_start_period_covers_a_short_warmup_exactly() -> None:
    docs = ecs_documents(RenderOptions(startup_s=120))
    check = docs["RegisterTaskDefinition"]["containerDefinitions"][0]["healthCheck"]
    assert check["startPeriod"] == 120


def test_ping_command_fails_when_nothing_listens() -> None:
    # port 9 (discard) has no HTTP server here: the probe must exit non-zero, not hang
    command = ping_command(9)
    assert command[:2] == ["CMD", "python"]
    done = subprocess.run([sys.executable, *command[2:]], capture_output=True, timeout=30)
    assert done.returncode == 1
