"""The SageMaker documents are accepted by boto3 (against moto) and say what we mean."""

from __future__ import annotations

import json

import boto3
import pytest

from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.sagemaker import sagemaker_documents


@pytest.mark.usefixtures("aws")
def test_application_autoscaling_accepts_target_and_policy() -> None:
    docs = json.loads(render(Engine.SAGEMAKER, RenderOptions(name="emb")))
    client = boto3.client("application-autoscaling", region_name="us-east-1")
    client.register_scalable_target(**docs["RegisterScalableTarget"])
    client.put_scaling_policy(**docs["PutScalingPolicy"])

    (target,) = client.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/emb/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 20)
    (policy,) = client.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 300.0  # 5 requests/s per instance, per minute
    metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
    assert metric == "SageMakerVariantInvocationsPerInstance"
    assert (tracking["ScaleOutCooldown"], tracking["ScaleInCooldown"]) == (60, 180)


@pytest.mark.usefixtures("aws")
def test_endpoint_config_carries_the_startup_health_check_timeout() -> None:
    # moto's instance-type list predates ml.g5 (the default); botocore still validates
    # every parameter name and type against the real API model before moto sees it
    options = RenderOptions(name="emb", startup_s=900, instance_type="ml.g4dn.xlarge")
    docs = sagemaker_documents(options)
    client = boto3.client("sagemaker", region_name="us-east-1")
    client.create_model(
        ModelName="emb",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/emb:1"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/sagemaker",
    )
    client.create_endpoint_config(**docs["CreateEndpointConfig"])
    described = client.describe_endpoint_config(EndpointConfigName="emb-config")
    (variant,) = described["ProductionVariants"]
    assert variant["InitialInstanceCount"] == 2
    assert (
        docs["CreateEndpointConfig"]["ProductionVariants"][0]["ContainerStartupHealthCheckTimeoutInSeconds"]
        == 900
    )


def test_floor_follows_options() -> None:
    docs = sagemaker_documents(RenderOptions(min_hot=3, max_replicas=7))
    assert docs["RegisterScalableTarget"]["MinCapacity"] == 3
    assert docs["RegisterScalableTarget"]["MaxCapacity"] == 7
