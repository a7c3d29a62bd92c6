"""The ECS hosts' Auto Scaling group, warm pool and launch hook apply under boto3 + moto in the
rendered order and describe back as rendered; sizes and timeouts come from the pool config and
the start-up budget."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.bootstrap import lifecycle_script
from warmgate.autoscaling.render.ec2_warm_pool import warm_pool_documents
from warmgate.autoscaling.render.options import WarmPoolState
from warmgate.autoscaling.scenario import DEFAULT_SCALING
from warmgate.errors import ConfigError

REGION = "us-east-1"

#: which client makes each rendered call
CLIENTS = {
    "CreateCluster": "ecs",
    "PutRolePolicy": "iam",
    "CreateLaunchTemplate": "ec2",
    "CreateAutoScalingGroup": "autoscaling",
    "PutLifecycleHook": "autoscaling",
    "PutWarmPool": "autoscaling",
    "CreateCapacityProvider": "ecs",
    "PutClusterCapacityProviders": "ecs",
    "RegisterTaskDefinition": "ecs",
    "CreateService": "ecs",
    "RegisterScalableTarget": "application-autoscaling",
    "PutScalingPolicy": "application-autoscaling",
}


def snake(call: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in call).lstrip("_")


def apply(docs: dict[str, dict[str, Any]]) -> None:
    """Make every rendered call, in the rendered order, against moto."""
    for call, kwargs in docs.items():
        client = boto3.client(CLIENTS[call], region_name=REGION)  # type: ignore[call-overload]
        getattr(client, snake(call))(**kwargs)


def create_instance_role() -> None:
    """What the documents expect to exist already, besides the network: the ECS instance role."""
    iam = boto3.client("iam", region_name=REGION)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    iam.create_role(RoleName="ecsInstanceRole", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_instance_profile(InstanceProfileName="ecsInstanceRole")
    iam.add_role_to_instance_profile(InstanceProfileName="ecsInstanceRole", RoleName="ecsInstanceRole")


@pytest.mark.parametrize("state", list(WarmPoolState), ids=[s.value for s in WarmPoolState])
def test_every_call_applies_and_the_pool_and_hook_describe_back(
    state: WarmPoolState, network: tuple[str, str]
) -> None:
    subnet, security_group = network
    create_instance_role()
    options = RenderOptions(
        name="emb",
        image="repo/emb:1",
        pool_state=state,
        region=REGION,
        subnets=(subnet,),
        security_groups=(security_group,),
    )
    docs = json.loads(render(Engine.ECS, options))
    assert list(docs) == list(CLIENTS)  # the order to apply them in
    apply(docs)

    autoscaling = boto3.client("autoscaling", region_name=REGION)
    pool = autoscaling.describe_warm_pool(AutoScalingGroupName="emb-ecs")["WarmPoolConfiguration"]
    rendered = docs["PutWarmPool"]
    assert pool["PoolState"] == rendered["PoolState"] == state.value
    assert (pool["MinSize"], pool["MaxGroupPreparedCapacity"]) == (0, 3)  # DEFAULT_POOL's
    assert pool["InstanceReusePolicy"] == {"ReuseOnScaleIn": False}  # ECS forbids reuse

    (hook,) = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName="emb-ecs")["LifecycleHooks"]
    assert hook["LifecycleHookName"] == "emb-warm"
    assert hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_LAUNCHING"
    assert hook["DefaultResult"] == "ABANDON"
    assert hook["HeartbeatTimeout"] == 600 + 75  # start-up budget + a clean stop (5+60+5+5)

    (group,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["emb-ecs"])[
        "AutoScalingGroups"
    ]
    assert group["NewInstancesProtectedFromScaleIn"] is True
    assert group["VPCZoneIdentifier"] == subnet
    assert group["MaxSize"] == DEFAULT_SCALING.max_replicas

    ec2 = boto3.client("ec2", region_name=REGION)
    (version,) = ec2.describe_launch_template_versions(LaunchTemplateName="emb-ecs")["LaunchTemplateVersions"]
    data = version["LaunchTemplateData"]
    assert data["HibernationOptions"] == {"Configured": state is WarmPoolState.HIBERNATED}
    assert data["MetadataOptions"]["HttpTokens"] == "required"  # the script speaks IMDSv2
    user_data = base64.b64decode(data["UserData"]).decode()
    assert "ECS_WARM_POOLS_CHECK=true" in user_data and "ECS_CLUSTER=emb" in user_data
    assert lifecycle_script(options) in user_data

    ecs = boto3.client("ecs", region_name=REGION)
    (cluster,) = ecs.describe_clusters(clusters=["emb"])["clusters"]
    assert cluster["capacityProviders"] == ["emb-ec2"]
    (provider,) = ecs.describe_capacity_providers(capacityProviders=["emb-ec2"])["capacityProviders"]
    assert provider["autoScalingGroupProvider"]["managedTerminationProtection"] == "ENABLED"
    (service,) = ecs.describe_services(cluster="emb", services=["emb"])["services"]
    tasks_network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert (tasks_network["subnets"], tasks_network["securityGroups"]) == ([subnet], [security_group])
    # moto does not echo the service's capacityProviderStrategy; botocore validated its shape


@pytest.mark.parametrize(
    ("pool", "sizes"),
    [
        (PoolConfig(target_size=1, min_size=1, max_prepared=4), (1, 4)),
        (PoolConfig(target_size=3, min_size=0, max_prepared=None), (3, 3)),
    ],
    ids=["max-prepared", "constant-target"],
)
def test_warm_pool_sizes_come_from_the_pool_config(pool: PoolConfig, sizes: tuple[int, int]) -> None:
    docs = warm_pool_documents(RenderOptions.from_scaling(DEFAULT_SCALING, pool))
    warm = docs["PutWarmPool"]
    assert (warm["MinSize"], warm["MaxGroupPreparedCapacity"]) == sizes


def test_the_hook_waits_the_start_up_budget_and_refuses_more_than_aws_allows() -> None:
    docs = warm_pool_documents(RenderOptions(startup_s=1800, drain_delay_s=0, timeout_s=10))
    assert docs["PutLifecycleHook"]["HeartbeatTimeout"] == 1800 + 15
    with pytest.raises(ConfigError, match="7200"):
        warm_pool_documents(RenderOptions(startup_s=7200))
    render(Engine.K8S, RenderOptions(startup_s=7200))  # a limit of EC2's, not of every engine


def test_the_role_may_complete_this_groups_hook_only() -> None:
    options = RenderOptions(name="emb", region="eu-west-1", account_id="123456789012", asg_name="hosts")
    docs = warm_pool_documents(options)
    (statement,) = json.loads(docs["PutRolePolicy"]["PolicyDocument"])["Statement"]
    assert statement["Action"] == "autoscaling:CompleteLifecycleAction"
    assert statement["Resource"] == (
        "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/hosts"
    )
    assert docs["PutWarmPool"]["AutoScalingGroupName"] == "hosts"
    assert docs["CreateCapacityProvider"]["autoScalingGroupProvider"]["autoScalingGroupArn"] == "hosts"


def test_complete_lifecycle_action_as_the_script_calls_it_fits_the_api_model() -> None:
    # moto has no CompleteLifecycleAction: check the script's CLI options against botocore's
    # model of the call (the CLI maps --auto-scaling-group-name to AutoScalingGroupName, ...)
    script = lifecycle_script(RenderOptions())
    options = [
        "--auto-scaling-group-name",
        "--lifecycle-hook-name",
        "--instance-id",
        "--lifecycle-action-result",
    ]
    assert all(option in script for option in options)
    params = {
        "AutoScalingGroupName": "emb-ecs",
        "LifecycleHookName": "emb-warm",
        "InstanceId": "i-0123456789abcdef0",
        "LifecycleActionResult": "CONTINUE",
    }
    shape = (
        get_session().get_service_model("autoscaling").operation_model("CompleteLifecycleAction").input_shape
    )
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
