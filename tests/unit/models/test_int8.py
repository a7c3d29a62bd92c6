"""``export_onnx(quantize="int8")`` (``warmgate export-onnx --quantize int8``): the int8 copy loads,
warms every bucket and serves like any model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import serving
from tests.unit.models.bert_dirs import cosine
from warmgate.cli import main
from warmgate.models.text import export_onnx

TEXTS = ["recommend a manga", "the weather is nice today", "warm gate"]


@pytest.fixture(scope="module")
def exported(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(fp32 dir, int8 dir)`` of the tiny BERT; the int8 one written through the CLI."""
    root = tmp_path_factory.mktemp("int8")
    dirs = []
    for name in ("fp32", "int8"):
        out = root / name
        out.mkdir()
        for item in ("config.json", "tokenizer.json"):
            shutil.copy(tiny_dir / item, out / item)
        dirs.append(out)
    export_onnx(tiny_dir, dirs[0] / "model.onnx")
    assert main(["export-onnx", str(tiny_dir), "-o", str(dirs[1] / "model.onnx"), "--quantize", "int8"]) == 0
    return dirs[0], dirs[1]


def test_int8_copy_holds_int8_weights(exported: tuple[Path, Path]) -> None:
    fp32, int8 = (d / "model.onnx" for d in exported)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    kept = [n.name for n in onnx.load(str(int8)).graph.node if n.op_type == "MatMul"]
    assert kept and all("/output/dense/" in n or "attention/self/MatMul" in n for n in kept)
    assert int8.stat().st_size < fp32.stat().st_size


def test_int8_model_warms_and_serves(exported: tuple[Path, Path]) -> None:
    fp32_dir, int8_dir = exported
    vectors = []
    for model_dir in (fp32_dir, int8_dir):
        with serving(model_dir, backend="onnx", max_batch="4", seq_lens="16,32") as client:
            ready = client.get("/readyz").json()
            assert ready["phase"] == "ready", ready
            assert ready["warmup"]["done"] >= 6  # every bucket: batch 1, 2, 4 × seq 16, 32
            response = client.post("/invocations", json={"inputs": TEXTS})
            assert response.status_code == 200, response.text
            vectors.append(np.asarray(response.json()["embeddings"], np.float32))
    assert vectors[1].shape == vectors[0].shape
    assert min(cosine(a, b) for a, b in zip(*vectors, strict=True)) > 0.9
