"""The Model contract of the text backends: validation, buckets, oversize, warmup bodies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from warmgate.errors import BadRequest, ConfigError, ModelLoadError, PayloadTooLarge
from warmgate.models.base import Bucket, Model, ModelKind
from warmgate.models.buckets import BucketPlan
from warmgate.models.text import (
    OnnxTextModel,
    TextEmbeddingModel,
    TorchTextModel,
    choose_backend,
    load_text_model,
)


def test_models_satisfy_the_protocol(
    torch_minilm: TextEmbeddingModel, onnx_minilm: TextEmbeddingModel
) -> None:
    for model in (torch_minilm, onnx_minilm):
        assert isinstance(model, Model)
        assert model.kind is ModelKind.TEXT
        assert model.max_batch == 32
        assert list(model.buckets()) == BucketPlan.default(32, (16, 32, 64, 128, 256)).buckets()
        meta = model.metadata()
        assert meta["dimension"] == 384
        assert meta["max_seq_length"] == 256
        assert meta["device"] == "cpu"
    assert onnx_minilm.metadata()["providers"] == ["CPUExecutionProvider"]
    assert onnx_minilm.metadata()["backend"] == "onnxruntime"
    assert torch_minilm.metadata()["backend"] == "torch"


@pytest.mark.parametrize(
    "payload, message",
    [
        ([], "at least one"),
        ({"inputs": ["x"]}, "list of strings"),
        (["ok", 3], "inputs[1]"),
        ([None], "inputs[0]"),
    ],
)
def test_bad_payloads_are_bad_requests(
    onnx_minilm: TextEmbeddingModel, payload: object, message: str
) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[")):
        onnx_minilm.prepare(payload)


def test_item_key_is_the_sequence_bucket_of_the_longest_text(
    onnx_minilm: TextEmbeddingModel,
) -> None:
    item = onnx_minilm.prepare(["hi", "hello " * 20])  # 22 tokens → bucket 32
    assert (item.key, item.size) == (32, 2)
    assert onnx_minilm.prepare("a bare string").size == 1
    assert onnx_minilm.prepare(["word " * 1000]).key == 256  # truncated, never past 256


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_every_synthetic_request_lands_in_its_bucket(
    torch_minilm: TextEmbeddingModel, onnx_minilm: TextEmbeddingModel, backend: str
) -> None:
    model = torch_minilm if backend == "torch" else onnx_minilm
    for bucket in model.buckets():
        request = model.synthetic_request(bucket)
        assert request.content_type == "application/json"
        texts = json.loads(request.body)["inputs"]
        item = model.prepare(texts)
        assert Bucket(item.size, item.key) == bucket
        assert model.plan.select(item.size, item.key) == bucket


def test_oversize_batch_is_rejected_or_run_eagerly(minilm_onnx: Path) -> None:
    plan = BucketPlan((1, 2, 4), (16, 32))
    rejecting = OnnxTextModel(minilm_onnx, plan=plan, oversize="reject", threads=1)
    rejecting.load()
    with pytest.raises(PayloadTooLarge, match="maximum batch of 4"):
        rejecting.prepare(["x"] * 5)
    with pytest.raises(PayloadTooLarge, match="largest sequence bucket"):
        rejecting.prepare(["word " * 40])

    eager = OnnxTextModel(minilm_onnx, plan=plan, oversize="eager", threads=1)
    eager.load()
    texts = ["recommend a manga"] * 5 + ["word " * 40]
    item = eager.prepare(texts)
    (out,) = eager.infer([item])
    assert out.shape == (6, 384)
    assert eager.stats.out_of_bucket == 1
    (alone,) = eager.infer([eager.prepare(["recommend a manga"])])
    np.testing.assert_allclose(out[0], alone[0], atol=2e-5)


def test_plan_longer_than_the_model_is_capped(minilm_dir: Path) -> None:
    model = TorchTextModel(minilm_dir, plan=BucketPlan((1, 8), (64, 256, 512)))
    assert model.plan.seq_lens == (64, 256)


def test_options_accept_enums_with_the_same_values(minilm_dir: Path) -> None:
    import enum

    class Device(enum.Enum):
        CPU = "cpu"

    class Oversize(enum.Enum):
        EAGER = "eager"

    model = TorchTextModel(minilm_dir, device=Device.CPU, oversize=Oversize.EAGER)
    assert model.requested_device == "cpu"
    assert model.oversize.value == "eager"
    with pytest.raises(ConfigError, match="device must be one of"):
        TorchTextModel(minilm_dir, device="tpu")
    with pytest.raises(ConfigError, match="oversize policy"):
        TorchTextModel(minilm_dir, oversize="sometimes")


def test_backend_choice(minilm_dir: Path, minilm_onnx: Path, tmp_path: Path) -> None:
    assert choose_backend(minilm_onnx) == "onnx"
    assert choose_backend(minilm_dir) == "torch"
    assert choose_backend(minilm_onnx, "torch") == "torch"
    assert isinstance(load_text_model(minilm_onnx), OnnxTextModel)
    assert isinstance(load_text_model(minilm_dir, backend="torch"), TorchTextModel)
    with pytest.raises(ModelLoadError, match=r"neither model\.onnx nor model\.safetensors"):
        choose_backend(tmp_path)
    with pytest.raises(ConfigError):
        choose_backend(minilm_dir, "tensorrt")


def test_cuda_request_without_a_gpu_is_a_load_error(minilm_onnx: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    model = OnnxTextModel(minilm_onnx, device="cuda")
    with pytest.raises(ModelLoadError, match="cuda"):
        model.load()


def test_torch_on_cpu_seals_without_graphs(torch_minilm: TextEmbeddingModel) -> None:
    torch_minilm.seal()
    before = torch_minilm.stats.eager_runs
    torch_minilm.infer([torch_minilm.prepare(["after seal"])])
    stats = torch_minilm.stats
    assert stats.eager_runs == before + 1
    assert (stats.graphs_captured, stats.graphs_replayed, stats.graphs_missed) == (0, 0, 0)


def test_importing_the_text_package_imports_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys, warmgate.models.text, warmgate.models.fetch\n"
        "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_onnx_graph_that_is_not_a_text_encoder(minilm_dir: Path, tmp_path: Path) -> None:
    from tests import onnx_models

    model_dir = tmp_path / "linear"
    onnx_models.linear(model_dir / "model.onnx")
    (model_dir / "tokenizer.json").write_bytes((minilm_dir / "tokenizer.json").read_bytes())
    model = OnnxTextModel(model_dir, device="cpu")
    with pytest.raises(ModelLoadError, match=r"takes input_ids, attention_mask.*missing"):
        model.load()


def test_corrupt_onnx_file_is_a_load_error(minilm_onnx: Path, tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes((minilm_onnx / "model.onnx").read_bytes()[:1000])
    model = OnnxTextModel(minilm_onnx, onnx_path=broken, device="cpu")
    with pytest.raises(ModelLoadError, match="onnxruntime cannot load"):
        model.load()


def test_onnx_needs_no_bert_config(minilm_onnx: Path, tmp_path: Path) -> None:
    """The ONNX path reads only max_position_embeddings and hidden_size, when present."""
    (tmp_path / "tokenizer.json").write_bytes((minilm_onnx / "tokenizer.json").read_bytes())
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "distilbert", "dim": 384}))
    model = OnnxTextModel(tmp_path, onnx_path=minilm_onnx / "model.onnx", device="cpu", threads=1)
    assert model.dimension is None
    model.load()
    assert model.dimension == 384
    (out,) = model.infer([model.prepare(["recommend a manga"])])
    assert out.shape == (1, 384)


def test_torch_threads_sleep_when_idle(minilm_dir: Path) -> None:
    """Built through load_text_model in a fresh process, torch's OpenMP threads do not spin."""
    code = (
        "import os, sys\n"
        "from warmgate.models.text import load_text_model\n"
        f"load_text_model({str(minilm_dir)!r}, backend='torch')\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["PASSIVE", "True"]
