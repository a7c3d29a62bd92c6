"""Pooling config is read like sentence-transformers reads it; pooling ignores padding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from warmgate.errors import ModelLoadError
from warmgate.models.text.layout import TextModelFiles
from warmgate.models.text.pooling import PoolingConfig, PoolingMode, pool


def write(root: Path, name: str, value: object) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")


def test_minilm_config(minilm_dir: Path) -> None:
    config = PoolingConfig.from_dir(TextModelFiles(minilm_dir), max_positions=512)
    assert config == PoolingConfig(PoolingMode.MEAN, normalize=True, max_seq_length=256)


def test_defaults_without_files(tmp_path: Path) -> None:
    assert PoolingConfig.from_dir(TextModelFiles(tmp_path)) == PoolingConfig()
    assert PoolingConfig.from_dir(TextModelFiles(tmp_path), 128).max_seq_length == 128


def test_modes_and_normalize(tmp_path: Path) -> None:
    write(tmp_path, "1_Pooling/config.json", {"pooling_mode_cls_token": True})
    write(tmp_path, "modules.json", [{"type": "sentence_transformers.models.Transformer"}])
    write(tmp_path, "sentence_bert_config.json", {"max_seq_length": 128})
    config = PoolingConfig.from_dir(TextModelFiles(tmp_path))
    assert config == PoolingConfig(PoolingMode.CLS, normalize=False, max_seq_length=128)
    write(tmp_path, "1_Pooling/config.json", {"pooling_mode": "max"})
    assert PoolingConfig.from_dir(TextModelFiles(tmp_path)).mode is PoolingMode.MAX


@pytest.mark.parametrize(
    "pooling",
    [
        {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True},
        {"pooling_mode_mean_sqrt_len_tokens": True},
        {},
    ],
)
def test_unsupported_pooling_is_a_load_error(tmp_path: Path, pooling: dict[str, bool]) -> None:
    write(tmp_path, "1_Pooling/config.json", pooling)
    with pytest.raises(ModelLoadError, match="exactly one of"):
        PoolingConfig.from_dir(TextModelFiles(tmp_path))


def test_padding_positions_never_contribute() -> None:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)
    garbage = emb.copy()
    garbage[0, 3:] = 1e6
    for mode in PoolingMode:
        config = PoolingConfig(mode, normalize=False)
        np.testing.assert_allclose(pool(emb, mask, config)[0], pool(garbage, mask, config)[0])
    mean = pool(emb, mask, PoolingConfig(PoolingMode.MEAN, normalize=False))
    np.testing.assert_allclose(mean[0], emb[0, :3].mean(axis=0), rtol=1e-6)
    normed = pool(emb, mask, PoolingConfig())
    np.testing.assert_allclose(np.linalg.norm(normed, axis=1), 1.0, rtol=1e-6)


def test_all_padding_row_is_finite() -> None:
    emb = np.ones((1, 3, 4), dtype=np.float32)
    out = pool(emb, np.zeros((1, 3), dtype=np.int64), PoolingConfig())
    assert np.isfinite(out).all()
