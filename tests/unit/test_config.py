"""Config: flags > environment > warmgate.toml > defaults, with errors that name the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from warmgate.config import Backend, Oversize, load_config
from warmgate.errors import ConfigError


def test_defaults_follow_the_sagemaker_contract() -> None:
    config = load_config({}, env={})
    assert config.port == 8080
    assert config.model_dir == Path("/opt/ml/model")
    assert config.max_payload_bytes == 6 * 1024 * 1024
    assert config.inference_threads >= 1


def test_precedence_flags_env_toml(tmp_path: Path) -> None:
    (tmp_path / "warmgate.toml").write_text(
        '[limits]\ntimeout_s = 7\nmax_queue = 9\n[buckets]\nseq_lens = [8, 16]\noversize = "reject"\n'
        "[batching]\nmax_batch = 4\n"
    )
    env = {
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "11",
        "SAGEMAKER_BIND_TO_PORT": "9090",
        "WARMGATE_BACKEND": "onnx",
    }
    config = load_config({"model_dir": str(tmp_path), "max_queue": "3"}, env=env)
    assert config.port == 9090
    assert config.timeout_s == 11.0  # env beats toml
    assert config.max_queue == 3  # flag beats toml
    assert config.seq_lens == (8, 16)
    assert config.oversize is Oversize.REJECT
    assert config.backend is Backend.ONNX
    assert config.bucket_plan((16,)).batch_sizes == (1, 2, 4)


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[limits]\nnope = 1\n", "unknown setting [limits] nope"),
        ("[limits\n", "warmgate.toml"),
        ("[limits]\ntimeout_s = -1\n", "timeout_s must be > 0"),
        ("[model]\ninstances = -1\n", "instances must be >= 0"),
        ('[model]\nbackend = "tensorrt"\n', "invalid value for backend"),
    ],
)
def test_bad_toml_names_the_problem(tmp_path: Path, toml: str, needle: str) -> None:
    (tmp_path / "warmgate.toml").write_text(toml)
    with pytest.raises(ConfigError, match=None) as info:
        load_config({"model_dir": str(tmp_path)}, env={})
    assert needle in str(info.value)


def test_bad_env_value_names_the_option() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({}, env={"WARMGATE_WARMUP": "maybe"})
    assert "warmup" in str(info.value) and "maybe" in str(info.value)


def test_instances_share_the_cores_out_unless_threads_are_set() -> None:
    cores = os.cpu_count() or 1
    assert load_config({"instances": "2"}, env={}).ort_threads == max(1, cores // 2)
    assert load_config({"instances": "2", "threads": "3"}, env={}).ort_threads == 3
    default = load_config({}, env={})  # two instances where there are two cores or more
    assert (default.ort_instances, default.ort_threads) == (min(2, cores), max(1, cores // min(2, cores)))
    assert load_config({"instances": "1"}, env={}).ort_threads == cores
