"""safetensors headers are validated before anything is built; every problem names its tensor."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch

from tests.unit.models.bert_dirs import TINY_CONFIG, random_weights, write_bert_dir
from warmgate.errors import ModelLoadError
from warmgate.models.text import TorchTextModel
from warmgate.models.text.bert_config import BertConfig

TINY = BertConfig.from_dict(TINY_CONFIG)


def load(model_dir: Path) -> TorchTextModel:
    model = TorchTextModel(model_dir, device="cpu")
    model.load()
    return model


def weights_with(**changes: torch.Tensor | None) -> dict[str, torch.Tensor]:
    tensors = random_weights(TINY)
    for name, value in changes.items():
        key = name.replace("__", ".")
        if value is None:
            del tensors[key]
        else:
            tensors[key] = value
    return tensors


def test_truncated_file(tiny_dir: Path, tmp_path: Path, minilm_dir: Path) -> None:
    broken = write_bert_dir(tmp_path / "m", minilm_dir)
    data = (tiny_dir / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"truncated"):
        load(broken)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "too short"),
        (b"\x00" * 4, "too short"),
        (b"not a safetensors file at all, just text", "does not fit"),
        (struct.pack("<Q", 12) + b"{not json!!}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "JSON object"),
    ],
)
def test_garbage_headers(tmp_path: Path, minilm_dir: Path, content: bytes, reason: str) -> None:
    broken = write_bert_dir(tmp_path / "m", minilm_dir)
    (broken / "model.safetensors").write_bytes(content)
    with pytest.raises(ModelLoadError, match=reason) as info:
        load(broken)
    assert "model.safetensors" in str(info.value)


def test_header_entry_inconsistent_with_its_bytes(tmp_path: Path, minilm_dir: Path) -> None:
    header = {"embeddings.word_embeddings.weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}
    raw = json.dumps(header).encode()
    broken = write_bert_dir(tmp_path / "m", minilm_dir)
    (broken / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    with pytest.raises(ModelLoadError, match=r"'embeddings.word_embeddings.weight'.*16 bytes"):
        load(broken)


def test_missing_tensor(tmp_path: Path, minilm_dir: Path) -> None:
    tensors = weights_with(encoder__layer__1__output__dense__weight=None)
    broken = write_bert_dir(tmp_path / "m", minilm_dir, tensors)
    with pytest.raises(ModelLoadError, match=r"missing tensor 'encoder.layer.1.output.dense.weight'"):
        load(broken)


def test_misshaped_tensor(tmp_path: Path, minilm_dir: Path) -> None:
    tensors = weights_with(encoder__layer__0__attention__self__query__weight=torch.zeros(32, 16))
    broken = write_bert_dir(tmp_path / "m", minilm_dir, tensors)
    with pytest.raises(
        ModelLoadError, match=r"'encoder.layer.0.attention.self.query.weight' has shape \[32, 16\]"
    ):
        load(broken)


def test_wrong_dtype(tmp_path: Path, minilm_dir: Path) -> None:
    tensors = weights_with(embeddings__LayerNorm__bias=torch.zeros(32, dtype=torch.int32))
    broken = write_bert_dir(tmp_path / "m", minilm_dir, tensors)
    with pytest.raises(ModelLoadError, match=r"'embeddings.LayerNorm.bias' has dtype I32"):
        load(broken)


def test_extra_tensor(tmp_path: Path, minilm_dir: Path) -> None:
    tensors = weights_with(cls__predictions__bias=torch.zeros(30522))
    broken = write_bert_dir(tmp_path / "m", minilm_dir, tensors)
    with pytest.raises(ModelLoadError, match=r"unexpected tensor 'cls.predictions.bias'"):
        load(broken)


def test_config_disagreeing_with_weights(tmp_path: Path, minilm_dir: Path) -> None:
    bigger = {**TINY_CONFIG, "num_hidden_layers": 3}
    broken = write_bert_dir(tmp_path / "m", minilm_dir, random_weights(TINY), config=bigger)
    with pytest.raises(ModelLoadError, match=r"missing tensor 'encoder.layer.2\.") as info:
        load(broken)
    assert "16 problems" in str(info.value)


def test_bad_config_json(tmp_path: Path, minilm_dir: Path) -> None:
    model_dir = write_bert_dir(tmp_path / "m", minilm_dir)
    (model_dir / "config.json").write_text("{", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"config\.json is not valid JSON"):
        TorchTextModel(model_dir)
    (model_dir / "config.json").write_text(json.dumps({**TINY_CONFIG, "hidden_size": 30}))
    with pytest.raises(ModelLoadError, match="not a multiple of num_attention_heads"):
        TorchTextModel(model_dir)
    (model_dir / "config.json").write_text(json.dumps({**TINY_CONFIG, "hidden_act": "swish"}))
    with pytest.raises(ModelLoadError, match="hidden_act 'swish'"):
        TorchTextModel(model_dir)


def test_missing_files_are_named(tmp_path: Path, minilm_dir: Path) -> None:
    model_dir = write_bert_dir(tmp_path / "m", minilm_dir)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json does not exist"):
        load(model_dir)
    (model_dir / "tokenizer.json").write_text("garbage")
    with pytest.raises(ModelLoadError, match=r"not a valid tokenizer\.json"):
        load(model_dir)
