"""The renderers' options come from the policy's ScalingConfig, not from a second copy."""

from __future__ import annotations

import json

from warmgate.autoscaling.model import ScalingConfig, TargetMetric
from warmgate.autoscaling.render import Engine, RenderOptions, render


def test_sagemaker_policy_carries_the_scaling_configs_floor_cap_target_and_window() -> None:
    scaling = ScalingConfig(
        min_hot=3,
        max_replicas=9,
        metric=TargetMetric.INVOCATIONS,
        target_per_replica=7.5,
        scale_in_window_s=240.5,
    )
    docs = json.loads(render(Engine.SAGEMAKER, RenderOptions.from_scaling(scaling, name="emb")))
    text = json.dumps(docs)
    assert '"MinCapacity": 3' in text and '"MaxCapacity": 9' in text
    assert '"TargetValue": 450.0' in text  # 7.5/s x 60
    assert '"ScaleInCooldown": 241' in text


def test_an_in_flight_policy_sets_the_hpa_target_and_engine_options_pass_through() -> None:
    scaling = ScalingConfig(min_hot=2, max_replicas=5, metric=TargetMetric.IN_FLIGHT, target_per_replica=4.0)
    options = RenderOptions.from_scaling(scaling, name="emb", port=9000)
    yaml_text = render(Engine.K8S, options)
    assert "minReplicas: 2" in yaml_text and "maxReplicas: 5" in yaml_text
    assert "averageValue: '4.0'" in yaml_text or 'averageValue: "4.0"' in yaml_text
    assert "9000" in yaml_text
