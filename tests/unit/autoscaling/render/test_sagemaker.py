"""The SageMaker documents are accepted by boto3 (against moto, or botocore's model of the API
where moto lacks the call) and say what we mean."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from warmgate.autoscaling.model import ScalingConfig, TargetMetric
from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.sagemaker import inference_component_documents, sagemaker_documents


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


SERVICES = {
    "CreateEndpointConfig": "sagemaker",
    "CreateEndpoint": "sagemaker",
    "CreateInferenceComponent": "sagemaker",
    "RegisterScalableTarget": "application-autoscaling",
    "PutScalingPolicy": "application-autoscaling",
}


def test_every_inference_component_call_fits_the_api_model() -> None:
    # moto has no inference components (CreateInferenceComponent, the DesiredCopyCount
    # dimension, a variant without a ModelName): each call is checked against botocore's
    # model of the real API instead, the validation boto3 runs before sending (unknown keys,
    # types, enums, required members)
    docs = json.loads(render(Engine.SAGEMAKER, RenderOptions(name="emb", inference_components=True)))
    assert list(docs) == list(SERVICES)
    session = get_session()
    for call, kwargs in docs.items():
        shape = session.get_service_model(SERVICES[call]).operation_model(call).input_shape
        report = ParamValidator().validate(kwargs, shape)
        assert not report.has_errors(), f"{call}: {report.generate_report()}"
    dimension = session.get_service_model("application-autoscaling").shape_for("ScalableDimension")
    assert docs["RegisterScalableTarget"]["ScalableDimension"] in dimension.enum


def test_the_schema_check_catches_a_misspelt_member() -> None:
    docs = inference_component_documents(RenderOptions(name="emb"))
    variant = docs["CreateEndpointConfig"]["ProductionVariants"][0]
    variant["ManagedInstanceScaling"]["MinInstances"] = variant["ManagedInstanceScaling"].pop(
        "MinInstanceCount"
    )
    shape = get_session().get_service_model("sagemaker").operation_model("CreateEndpointConfig").input_shape
    assert ParamValidator().validate(docs["CreateEndpointConfig"], shape).has_errors()


def test_the_floor_is_min_hot_copies_on_min_hot_instances() -> None:
    options = RenderOptions.from_scaling(
        ScalingConfig(min_hot=3, max_replicas=7, metric=TargetMetric.IN_FLIGHT, target_per_replica=4.0),
        inference_components=True,
    )
    docs = inference_component_documents(options)
    assert (docs["RegisterScalableTarget"]["MinCapacity"], docs["RegisterScalableTarget"]["MaxCapacity"]) == (
        3,
        7,
    )
    assert (
        docs["RegisterScalableTarget"]["ResourceId"]
        == f"inference-component/{docs['CreateInferenceComponent']['InferenceComponentName']}"
    )
    assert docs["CreateInferenceComponent"]["RuntimeConfig"]["CopyCount"] == 3
    scaling = docs["CreateEndpointConfig"]["ProductionVariants"][0]["ManagedInstanceScaling"]
    assert (scaling["MinInstanceCount"], scaling["MaxInstanceCount"]) == (3, 7)
    tracking = docs["PutScalingPolicy"]["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 4.0  # concurrent requests per copy: the in-flight target
    startup = docs["CreateInferenceComponent"]["Specification"]["StartupParameters"]
    assert startup["ContainerStartupHealthCheckTimeoutInSeconds"] == options.startup_s
