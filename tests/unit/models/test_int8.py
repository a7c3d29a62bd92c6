"""``export_onnx(quantize="int8")`` (``warmgate export-onnx --quantize int8``): the int8 copy loads,
warms every bucket and serves like any model."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import serving
from tests.unit.models.bert_dirs import TINY_CONFIG, cosine, write_bert_dir
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
    # two layers: the feed-forward down-projections stay fp32 (and the attention scores, which
    # multiply two activations); every other weight MatMul is int8
    ffn_down = [n for n in kept if re.fullmatch(r"/layer\.\d+/output/dense/MatMul", n)]
    assert len(ffn_down) == 2
    assert sorted(set(kept) - set(ffn_down)) == sorted(
        f"/layer.{i}/attention/self/MatMul{s}" for i in range(2) for s in ("", "_1")
    )
    fp32_weights = fp32.with_name("model.onnx.data")  # the fp32 export's weights; int8 is one file
    assert int8.stat().st_size < fp32.stat().st_size + fp32_weights.stat().st_size


def test_int8_keeps_inner_layers_feed_forward_fp32(tmp_path: Path) -> None:
    """With four layers, the feed-forward up-projection of layers 1 and 2 (not the first or the
    last) stays fp32 too; the attention projections are int8 in every layer."""
    deep = write_bert_dir(tmp_path / "deep", None, config={**TINY_CONFIG, "num_hidden_layers": 4})
    int8 = export_onnx(deep, tmp_path / "int8" / "model.onnx", quantize="int8")
    nodes = onnx.load(str(int8)).graph.node
    fp32_up = sorted(n.name for n in nodes if n.op_type == "MatMul" and "/intermediate/" in n.name)
    assert fp32_up == ["/layer.1/intermediate/dense/MatMul", "/layer.2/intermediate/dense/MatMul"]
    int8_names = " ".join(n.name for n in nodes if n.op_type == "MatMulInteger")
    for i in range(4):
        for part in ("query", "key", "value", "output/dense"):
            assert f"/layer.{i}/attention/{'self/' if part != 'output/dense' else ''}{part}/" in int8_names
    assert "/layer.0/intermediate/dense/" in int8_names and "/layer.3/intermediate/dense/" in int8_names


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
