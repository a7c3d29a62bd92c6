"""Fixtures for the text-model tests: the real MiniLM (fetched once per machine into the warmgate
cache), its ONNX export (once per session, in a temp dir), and a tiny random BERT directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.models.bert_dirs import write_bert_dir
from warmgate.models.fetch import default_cache_dir, fetch_default_model
from warmgate.models.text import OnnxTextModel, TorchTextModel, export_onnx

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="session")
def reference() -> list[dict[str, Any]]:
    """``[{"text", "embedding"}]`` computed with sentence-transformers."""
    items: list[dict[str, Any]] = json.loads(
        (FIXTURES / "minilm-embeddings.json").read_text(encoding="utf-8")
    )["items"]
    return items


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2, fetched into ``$WARMGATE_CACHE`` (or ~/.cache/warmgate/...) once."""
    return fetch_default_model(default_cache_dir(), progress=print)


@pytest.fixture(scope="session")
def minilm_onnx(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MiniLM exported to ONNX in a temp directory laid out like a model directory."""
    out = tmp_path_factory.mktemp("minilm-onnx")
    for name in ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json"):
        shutil.copy(minilm_dir / name, out / name)
    shutil.copytree(minilm_dir / "1_Pooling", out / "1_Pooling")
    export_onnx(minilm_dir, out / "model.onnx")
    return out


@pytest.fixture(scope="session")
def torch_minilm(minilm_dir: Path) -> TorchTextModel:
    model = TorchTextModel(minilm_dir, device="cpu")
    model.load()
    return model


@pytest.fixture(scope="session")
def onnx_minilm(minilm_onnx: Path) -> OnnxTextModel:
    model = OnnxTextModel(minilm_onnx, device="cpu", threads=1)
    model.load()
    return model


@pytest.fixture(scope="session")
def tiny_dir(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_dir(tmp_path_factory.mktemp("tiny-bert"), minilm_dir)
