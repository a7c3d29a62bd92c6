"""ECS on EC2: the capacity provider's Auto Scaling group, its warm pool and launch hook.

API call -> keyword arguments, in the order to apply them (each with its own boto3 client:
``iam``, ``ec2``, ``autoscaling``, ``ecs``). One task per instance is assumed (the instance
type fits one task's cpu and memory), so the pool's sizes in replicas are sizes in instances.

- ``PutWarmPool``: ``MaxGroupPreparedCapacity`` counts every instance that is not terminated,
  in service or in the pool, so the pool holds ``MaxGroupPreparedCapacity - desired``
  instances and shrinks while the group is larger: the pool config's ``max_prepared``, the
  same rule the simulator and the fleet follow. ``MinSize`` is the floor of the pool whatever
  the group's size. Without ``max_prepared`` the pool keeps ``target_size`` standbys: MinSize
  and MaxGroupPreparedCapacity both ``target_size``. ``InstanceReusePolicy`` stays off: ECS
  does not allow ``ReuseOnScaleIn`` for a capacity provider's group.
- ``PutLifecycleHook`` on ``autoscaling:EC2_INSTANCE_LAUNCHING`` with ABANDON by default, and
  a heartbeat of the start-up budget plus a clean stop: :mod:`.bootstrap` completes it.
- ``CreateLaunchTemplate``: the ECS-optimized Amazon Linux 2023 AMI (resolved from its public
  SSM parameter at launch), IMDSv2 only, the user data of :mod:`.bootstrap`, an encrypted gp3
  root volume, and hibernation configured when the pool state is Hibernated (hibernation can
  only be enabled at launch, needs an encrypted root volume larger than the instance's RAM,
  a supported instance family and AMI, and is not available for Spot).
- ``PutRolePolicy``: the instances' role may complete the hook of this group only.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from warmgate.autoscaling.render.bootstrap import lifecycle_hook_name, user_data
from warmgate.autoscaling.render.options import RenderOptions, WarmPoolState
from warmgate.errors import ConfigError

ECS_AMI = "resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
# EC2 Auto Scaling's limit on a lifecycle hook's HeartbeatTimeout (30 s .. 7200 s).
MAX_HOOK_HEARTBEAT_S = 7200


def capacity_provider_name(options: RenderOptions) -> str:
    return f"{options.name}-ec2"


def warm_pool_sizes(options: RenderOptions) -> tuple[int, int]:
    """``(MinSize, MaxGroupPreparedCapacity)`` for the pool config's sizes."""
    if options.pool_max_prepared is None:
        return options.pool_target_size, options.pool_target_size
    return options.pool_min_size, options.pool_max_prepared


def _group_arn(options: RenderOptions) -> str:
    return (
        f"arn:aws:autoscaling:{options.region}:{options.account_id}:autoScalingGroup:*:"
        f"autoScalingGroupName/{options.auto_scaling_group_name}"
    )


def warm_pool_documents(options: RenderOptions) -> dict[str, dict[str, Any]]:
    if options.lifecycle_heartbeat_s > MAX_HOOK_HEARTBEAT_S:
        raise ConfigError(
            f"startup_s + termination grace = {options.lifecycle_heartbeat_s} s exceeds the "
            f"{MAX_HOOK_HEARTBEAT_S} s an EC2 Auto Scaling lifecycle hook may wait"
        )
    group = options.auto_scaling_group_name
    template = f"{options.name}-ecs"
    min_size, max_prepared = warm_pool_sizes(options)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "autoscaling:CompleteLifecycleAction",
                "Resource": _group_arn(options),
            }
        ],
    }
    return {
        "PutRolePolicy": {
            "RoleName": options.instance_role,
            "PolicyName": f"{options.name}-complete-launch-hook",
            "PolicyDocument": json.dumps(policy),
        },
        "CreateLaunchTemplate": {
            "LaunchTemplateName": template,
            "LaunchTemplateData": {
                "ImageId": ECS_AMI,
                "InstanceType": options.ec2_instance_type,
                "IamInstanceProfile": {"Name": options.instance_role},
                "UserData": base64.b64encode(user_data(options).encode()).decode(),
                "MetadataOptions": {"HttpEndpoint": "enabled", "HttpTokens": "required"},
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/xvda",
                        "Ebs": {
                            "VolumeSize": options.root_volume_gib,
                            "VolumeType": "gp3",
                            "Encrypted": True,
                            "DeleteOnTermination": True,
                        },
                    }
                ],
                "HibernationOptions": {"Configured": options.pool_state is WarmPoolState.HIBERNATED},
            },
        },
        "CreateAutoScalingGroup": {
            "AutoScalingGroupName": group,
            "LaunchTemplate": {"LaunchTemplateName": template, "Version": "$Latest"},
            # the capacity provider's managed scaling sets the desired capacity
            "MinSize": 0,
            "MaxSize": options.max_replicas,
            "DesiredCapacity": 0,
            "VPCZoneIdentifier": ",".join(options.subnets),
            # managed termination protection: ECS scales in only instances without tasks
            "NewInstancesProtectedFromScaleIn": True,
        },
        "PutLifecycleHook": {
            "LifecycleHookName": lifecycle_hook_name(options),
            "AutoScalingGroupName": group,
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "HeartbeatTimeout": options.lifecycle_heartbeat_s,
            "DefaultResult": "ABANDON",
        },
        "PutWarmPool": {
            "AutoScalingGroupName": group,
            "MinSize": min_size,
            "MaxGroupPreparedCapacity": max_prepared,
            "PoolState": options.pool_state.value,
            "InstanceReusePolicy": {"ReuseOnScaleIn": False},
        },
        "CreateCapacityProvider": {
            "name": capacity_provider_name(options),
            "autoScalingGroupProvider": {
                "autoScalingGroupArn": group,  # ECS takes the group's name or its ARN
                "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
                "managedTerminationProtection": "ENABLED",
            },
        },
        "PutClusterCapacityProviders": {
            "cluster": options.name,
            "capacityProviders": [capacity_provider_name(options)],
            "defaultCapacityProviderStrategy": [
                {"capacityProvider": capacity_provider_name(options), "weight": 1}
            ],
        },
    }
