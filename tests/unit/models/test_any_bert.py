"""Any BERT-family directory of the sentence-transformers layout loads, not only MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.unit.models.bert_dirs import TINY_CONFIG, random_weights, write_bert_dir
from warmgate.models.text import OnnxTextModel, TorchTextModel, export_onnx
from warmgate.models.text.bert_config import BertConfig

TINY = BertConfig.from_dict(TINY_CONFIG)
TEXTS = ["", "recommend a manga", "one piece " * 60, "a b c d e f g"]


def embed_with(model: TorchTextModel | OnnxTextModel, texts: list[str]) -> np.ndarray:
    model.load()
    (out,) = model.infer([model.prepare(texts)])
    result: np.ndarray = out
    return result


@pytest.fixture(scope="module")
def tiny_embeddings(tiny_dir: Path) -> np.ndarray:
    return embed_with(TorchTextModel(tiny_dir, device="cpu"), TEXTS)


def test_tiny_bert_defaults(tiny_dir: Path, tiny_embeddings: np.ndarray) -> None:
    model = TorchTextModel(tiny_dir, device="cpu")
    # max_position_embeddings 128 caps the default 256 tokens; no pooling config → mean + L2.
    assert model.pooling.max_seq_length == 128
    assert model.plan.seq_lens == (16, 32, 64, 128)
    assert tiny_embeddings.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(tiny_embeddings, axis=1), 1.0, atol=1e-5)


def test_bert_prefix_and_unused_tensors_are_accepted(
    tmp_path: Path, minilm_dir: Path, tiny_embeddings: np.ndarray
) -> None:
    tensors = {f"bert.{k}": v for k, v in random_weights(TINY).items()}
    tensors["bert.pooler.dense.weight"] = torch.zeros(32, 32)
    tensors["bert.pooler.dense.bias"] = torch.zeros(32)
    tensors["bert.embeddings.position_ids"] = torch.arange(128)[None, :]
    prefixed = write_bert_dir(tmp_path / "prefixed", minilm_dir, tensors)
    np.testing.assert_allclose(embed_with(TorchTextModel(prefixed), TEXTS), tiny_embeddings, atol=1e-6)


def test_old_layernorm_names_and_half_precision(
    tmp_path: Path, minilm_dir: Path, tiny_embeddings: np.ndarray
) -> None:
    tensors = {}
    for name, value in random_weights(TINY).items():
        name = name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        tensors[name] = value
    old = write_bert_dir(tmp_path / "old", minilm_dir, tensors)
    np.testing.assert_allclose(embed_with(TorchTextModel(old), TEXTS), tiny_embeddings, atol=1e-6)

    half = {k: v.half() for k, v in random_weights(TINY).items()}
    halved = write_bert_dir(tmp_path / "half", minilm_dir, half)
    got = embed_with(TorchTextModel(halved), TEXTS)
    np.testing.assert_allclose(got, tiny_embeddings, atol=2e-2)


def test_onnx_export_of_any_bert_matches_torch(
    tiny_dir: Path, tmp_path: Path, tiny_embeddings: np.ndarray
) -> None:
    onnx_path = export_onnx(tiny_dir, tmp_path / "tiny.onnx")
    weights = tmp_path / "tiny.onnx.data"  # memory-mapped by ONNX Runtime, not copied
    assert weights.stat().st_size > 4 * onnx_path.stat().st_size
    model = OnnxTextModel(tiny_dir, onnx_path=onnx_path, threads=1)
    np.testing.assert_allclose(embed_with(model, TEXTS), tiny_embeddings, atol=1e-5)
    # dynamic axes: other batch sizes and lengths run through the same graph
    (out,) = model.infer([model.prepare(["x"] * 7)])
    assert out.shape == (7, 32)


def test_relu_and_tanh_gelu_activations(tmp_path: Path, minilm_dir: Path) -> None:
    for act in ("relu", "gelu_new"):
        model_dir = write_bert_dir(
            tmp_path / act, minilm_dir, random_weights(TINY), {**TINY_CONFIG, "hidden_act": act}
        )
        vectors = embed_with(TorchTextModel(model_dir), TEXTS)
        assert np.isfinite(vectors).all()


def test_a_directory_with_its_own_tokenizer(tmp_path: Path) -> None:
    small = {**TINY_CONFIG, "vocab_size": 16}
    model_dir = write_bert_dir(tmp_path / "own", None, config=small)
    model = TorchTextModel(model_dir)
    vectors = embed_with(model, ["recommend a manga", "one piece", "unknown words"])
    assert vectors.shape == (3, 32)
    for bucket in model.buckets():
        item = model.prepare(json.loads(model.synthetic_request(bucket).body)["inputs"])
        assert (item.size, item.key) == (bucket.batch, bucket.seq)
