"""``add_commands`` wires ``simulate`` and ``render`` onto any parser."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from warmgate.autoscaling.cli import add_commands, main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="warmgate")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_both_commands_are_registered_with_a_func() -> None:
    assert callable(parse(["simulate"]).func)
    assert callable(parse(["render", "k8s"]).func)


def test_render_sagemaker_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["render", "sagemaker", "--name", "emb", "--min-hot", "3"])
    assert args.func(args) == 0
    docs = json.loads(capsys.readouterr().out)
    assert docs["RegisterScalableTarget"]["MinCapacity"] == 3


def test_render_k8s_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "warmgate.yaml"
    assert main(["render", "k8s", "--port", "9000", "-o", str(out)]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(out.read_text())]
    assert kinds[:5] == [
        "Deployment",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    assert "containerPort: 9000" in out.read_text()


def test_simulate_a_counts_csv_with_a_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "mine.csv"
    trace.write_text("timestamp,requests\n" + "".join(f"{t},2\n" for t in range(0, 600, 10)))
    png = tmp_path / "plot.png"
    code = main(
        ["simulate", "--csv", str(trace), "--strategy", "aws-target-tracking-min-2", "--plot", str(png)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "120 requests" in out  # 60 rows x 2
    assert "SLA misses 0" in out  # 0.2 requests/s on two hot replicas
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_engine_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse(["render", "nomad"])


def test_render_ecs_takes_the_warm_pool_and_the_network_from_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["render", "ecs", "--name", "emb", "--pool-state", "Hibernated", "--max-prepared", "none"]
    argv += ["--pool-size", "2", "--subnet", "subnet-a", "--subnet", "subnet-b", "--region", "eu-west-1"]
    assert main(argv) == 0
    docs = json.loads(capsys.readouterr().out)
    pool = docs["PutWarmPool"]
    assert (pool["PoolState"], pool["MinSize"], pool["MaxGroupPreparedCapacity"]) == ("Hibernated", 2, 2)
    assert docs["CreateLaunchTemplate"]["LaunchTemplateData"]["HibernationOptions"] == {"Configured": True}
    assert docs["CreateAutoScalingGroup"]["VPCZoneIdentifier"] == "subnet-a,subnet-b"
    assert ":eu-west-1:" in docs["PutRolePolicy"]["PolicyDocument"]


def test_render_sagemaker_inference_components(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "sagemaker", "--inference-components", "--min-hot", "3"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert (
        docs["RegisterScalableTarget"]["ScalableDimension"]
        == "sagemaker:inference-component:DesiredCopyCount"
    )
    assert docs["RegisterScalableTarget"]["MinCapacity"] == 3
