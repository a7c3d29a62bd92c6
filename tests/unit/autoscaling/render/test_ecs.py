"""The ECS documents register under boto3 + moto; the health check covers warmup and needs
neither python nor curl; the service sits behind the load balancer with a grace period."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator

import boto3
import pytest

from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.ecs import ecs_documents, ping_command, target_group_arn


def test_task_definition_service_and_scaling_register(network: tuple[str, str]) -> None:
    subnet, group = network
    options = RenderOptions(name="emb", image="repo/emb:1", subnets=(subnet,), security_groups=(group,))
    docs = json.loads(render(Engine.ECS, options))
    ecs = boto3.client("ecs", region_name="us-east-1")
    task = ecs.register_task_definition(**docs["RegisterTaskDefinition"])["taskDefinition"]
    (container,) = task["containerDefinitions"]
    assert container["portMappings"][0]["containerPort"] == 8080
    check = container["healthCheck"]
    assert check["command"][:3] == ["CMD", "bash", "-c"] and "/ping" in check["command"][-1]
    assert check["startPeriod"] == 300  # covers warmup, capped at ECS's maximum

    ecs.create_cluster(**docs["CreateCluster"])
    service = ecs.create_service(**docs["CreateService"])["service"]
    assert service["desiredCount"] == 2
    (balancer,) = service["loadBalancers"]
    assert (balancer["containerName"], balancer["containerPort"]) == ("emb", 8080)
    assert balancer["targetGroupArn"].endswith(":targetgroup/REPLACE-ME/0123456789abcdef")
    # moto does not echo the grace period; botocore's parameter validation accepted its name and
    # type above (an unknown or mistyped key raises ParamValidationError before moto is reached)
    assert docs["CreateService"]["healthCheckGracePeriodSeconds"] == 600  # the whole start-up budget

    scaling = boto3.client("application-autoscaling", region_name="us-east-1")
    scaling.register_scalable_target(**docs["RegisterScalableTarget"])
    scaling.put_scaling_policy(**docs["PutScalingPolicy"])
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"]) == ("service/emb/emb", 2)


def test_start_period_covers_a_short_warmup_exactly() -> None:
    docs = ecs_documents(RenderOptions(startup_s=120))
    check = docs["RegisterTaskDefinition"]["containerDefinitions"][0]["healthCheck"]
    assert check["startPeriod"] == 120


def test_target_group_comes_from_the_alb_label_region_and_account() -> None:
    label = "app/front/50dc6c495c0c9188/targetgroup/emb-tg/73e2d6bc24d8a067"
    options = RenderOptions(alb_resource_label=label, region="eu-west-1", account_id="123456789012")
    assert target_group_arn(options) == (
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/emb-tg/73e2d6bc24d8a067"
    )


@pytest.fixture
def http_status() -> Iterator[tuple[int, list[bytes]]]:
    """A one-line HTTP server on a free port; append a status line to the list to answer with."""
    server = socket.create_server(("127.0.0.1", 0))
    answers: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:  # the whole request, as a real server reads it
                    request += conn.recv(1024)
                conn.sendall(answers.pop(0) + b"\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], answers
    server.close()


def run_check(port: int) -> int:
    command = ping_command(port)
    assert command[:2] == ["CMD", "bash"]  # no python, no curl: the image only needs bash
    return subprocess.run(command[1:], capture_output=True, timeout=30).returncode


def test_ping_command_is_healthy_only_on_200(http_status: tuple[int, list[bytes]]) -> None:
    port, answers = http_status
    answers.append(b"HTTP/1.1 503 Service Unavailable")
    assert run_check(port) == 1
    answers.append(b"HTTP/1.1 200 OK")
    assert run_check(port) == 0


def test_ping_command_fails_when_nothing_listens() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    assert run_check(port) == 1
