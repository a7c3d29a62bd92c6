"""What every renderer needs, in one frozen object, and the one dispatch to them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from warmgate.autoscaling.model import ScalingConfig, TargetMetric
from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.scenario import DEFAULT_POOL, DEFAULT_SCALING
from warmgate.errors import ConfigError

# The in-flight target when the policy scales on request rate: ScalingConfig's own default.
_IN_FLIGHT_DEFAULT = ScalingConfig().target_per_replica


class Engine(Enum):
    SAGEMAKER = "sagemaker"
    ECS = "ecs"
    K8S = "k8s"


class WarmPoolState(Enum):
    """The state an EC2 Auto Scaling warm pool parks its instances in (``PutWarmPool``'s
    ``PoolState``). Stopped and Hibernated pay only for EBS (Hibernated's volume also holds the
    RAM); Running pays the full instance price."""

    STOPPED = "Stopped"
    RUNNING = "Running"
    HIBERNATED = "Hibernated"


@dataclass(frozen=True)
class RenderOptions:
    """Defaults come from the simulator's tuned policy (``DEFAULT_SCALING``), its warm pool
    (``DEFAULT_POOL``) and the server.

    Build it with :meth:`from_scaling` so the engines get the policy's own floor, cap,
    target and scale-in window, and the pool's sizes, rather than a second copy of them.

    ``invocations_per_replica`` is per second (the policy's unit); SageMaker and the ALB
    count per minute, so their renderers multiply by 60. ``startup_s`` bounds provision +
    load + warmup: how long a new replica may answer /ping 503 before it is declared
    unhealthy. ``drain_delay_s`` is the server's ``WARMGATE_DRAIN_DELAY``; ``timeout_s`` its
    request timeout, the longest a request still in flight at SIGTERM may take.

    The warm pool: ``pool_target_size`` standbys (the Kubernetes standby Deployment's
    replicas); on EC2 ``pool_max_prepared`` is ``MaxGroupPreparedCapacity`` (hot + standby
    instances, ``None``: a constant ``pool_target_size``) and ``pool_min_size`` the pool's
    ``MinSize``. ``region``, ``account_id``, ``asg_name``, ``subnets`` and ``security_groups``
    fill the ARNs, names
    and network the AWS output refers to (placeholders until set).
    """

    name: str = "warmgate"
    image: str = "warmgate:latest"
    port: int = 8080
    min_hot: int = DEFAULT_SCALING.min_hot
    max_replicas: int = DEFAULT_SCALING.max_replicas
    invocations_per_replica: float = DEFAULT_SCALING.target_per_replica
    in_flight_per_replica: float = _IN_FLIGHT_DEFAULT
    scale_out_cooldown_s: int = 60  # AWS's own default; the policy has no scale-out cooldown
    scale_in_cooldown_s: int = math.ceil(DEFAULT_SCALING.scale_in_window_s)
    startup_s: int = 600
    drain_delay_s: int = 5
    timeout_s: int = 60
    instance_type: str = "ml.g5.xlarge"
    cpu_units: int = 2048
    memory_mib: int = 8192
    alb_resource_label: str = "app/REPLACE-ME/0123456789abcdef/targetgroup/REPLACE-ME/0123456789abcdef"
    pool_target_size: int = DEFAULT_POOL.target_size
    pool_min_size: int = DEFAULT_POOL.min_size
    pool_max_prepared: int | None = DEFAULT_POOL.max_prepared
    pool_state: WarmPoolState = WarmPoolState.STOPPED
    region: str = "REPLACE-REGION"
    account_id: str = "000000000000"
    asg_name: str | None = None
    subnets: tuple[str, ...] = ("subnet-REPLACE-ME",)  # the ECS hosts' and the tasks' subnets
    security_groups: tuple[str, ...] = ("sg-REPLACE-ME",)  # the tasks' (the ALB reaches `port`)
    instance_role: str = "ecsInstanceRole"  # the instance profile and role of the ECS hosts
    ec2_instance_type: str = "m6i.xlarge"  # 4 vCPU, 16 GiB: one 2-vCPU / 8 GiB task with room
    root_volume_gib: int = 30
    inference_components: bool = False  # SageMaker: an inference-component endpoint
    # Kubernetes: slim standbys. A READY standby pod is resized in place to this many cores
    # (memory kept: the model stays loaded) and back to cpu_units before its promotion.
    slim_standby_cores: float | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if self.min_hot < 1 or self.max_replicas < self.min_hot:
            raise ConfigError(
                f"need 1 <= min_hot <= max_replicas, got {self.min_hot} and {self.max_replicas}"
            )
        if self.invocations_per_replica <= 0 or self.in_flight_per_replica <= 0:
            raise ConfigError("targets per replica must be > 0")
        if self.startup_s < 60 or self.drain_delay_s < 0 or self.timeout_s < 1:
            raise ConfigError(
                "startup_s must be >= 60 (SageMaker's minimum), drain_delay_s >= 0, timeout_s >= 1"
            )
        if not self.subnets:
            raise ConfigError("subnets must name at least one subnet")
        if not 0 <= self.pool_min_size <= self.pool_target_size:
            raise ConfigError(
                "warm pool sizes must satisfy 0 <= pool_min_size <= pool_target_size, got "
                f"{self.pool_min_size} and {self.pool_target_size}"
            )
        if self.pool_max_prepared is not None and self.pool_max_prepared < self.pool_min_size:
            raise ConfigError(
                f"pool_max_prepared ({self.pool_max_prepared}) must be >= pool_min_size "
                f"({self.pool_min_size}): EC2 keeps at least MinSize standbys whatever it is"
            )

    @classmethod
    def from_scaling(
        cls, scaling: ScalingConfig, pool: PoolConfig = DEFAULT_POOL, **engine: Any
    ) -> RenderOptions:
        """The engines' options for ``scaling`` and ``pool``: floor, cap, the target in the
        policy's metric, the scale-in window and the pool's sizes; ``engine`` sets everything
        the policy and the pool do not know."""
        target = (
            {"invocations_per_replica": scaling.target_per_replica}
            if scaling.metric is TargetMetric.INVOCATIONS
            else {"in_flight_per_replica": scaling.target_per_replica}
        )
        policy: dict[str, Any] = {
            "min_hot": scaling.min_hot,
            "max_replicas": scaling.max_replicas,
            "scale_in_cooldown_s": math.ceil(scaling.scale_in_window_s),
            "pool_target_size": pool.target_size,
            "pool_min_size": pool.min_size,
            "pool_max_prepared": pool.max_prepared,
            **target,
        }
        return dataclasses.replace(cls(), **{**policy, **engine})

    @property
    def cores(self) -> float:
        """A replica's CPU in cores (``cpu_units`` are ECS's: 1024 a vCPU)."""
        return self.cpu_units / 1024

    @property
    def invocations_per_minute(self) -> float:
        return self.invocations_per_replica * 60.0

    @property
    def termination_grace_s(self) -> int:
        """Time from 'stop' to SIGKILL: the pre-stop wait, the server's drain delay, the
        longest request still in flight, and 5 s of slack."""
        return 2 * self.drain_delay_s + self.timeout_s + 5

    @property
    def auto_scaling_group_name(self) -> str:
        return self.asg_name or f"{self.name}-ecs"

    @property
    def lifecycle_heartbeat_s(self) -> int:
        """How long the launch hook waits for CompleteLifecycleAction: the start-up budget
        (boot, image pull, load, warmup) and a clean stop of the warm-up container."""
        return self.startup_s + self.termination_grace_s

    @property
    def probe_failures_for_startup(self) -> int:
        """Startup probe failures (every 5 s) that add up to ``startup_s``."""
        return math.ceil(self.startup_s / 5)


def render(engine: Engine, options: RenderOptions) -> str:
    """The engine's configuration as text: JSON for SageMaker and ECS, multi-doc YAML for K8s."""
    if engine is Engine.SAGEMAKER:
        from warmgate.autoscaling.render.sagemaker import render_sagemaker

        return render_sagemaker(options)
    if engine is Engine.ECS:
        from warmgate.autoscaling.render.ecs import render_ecs

        return render_ecs(options)
    from warmgate.autoscaling.render.k8s import render_k8s

    return render_k8s(options)
