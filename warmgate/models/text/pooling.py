"""Sentence-transformers pooling and normalisation, shared by every text backend.

Backends produce token embeddings ``(batch, seq, hidden)``; :func:`pool` turns them into one
vector per row using the attention mask, exactly like sentence-transformers' ``Pooling`` and
``Normalize`` modules. Padding positions have mask 0 and never contribute.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from warmgate.errors import ModelLoadError
from warmgate.models.text.layout import TextModelFiles, read_json, read_json_object

DEFAULT_MAX_SEQ_LENGTH = 256

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


class PoolingMode(enum.Enum):
    MEAN = "mean"
    CLS = "cls"
    MAX = "max"


_MODE_KEYS = {
    "pooling_mode_mean_tokens": PoolingMode.MEAN,
    "pooling_mode_cls_token": PoolingMode.CLS,
    "pooling_mode_max_tokens": PoolingMode.MAX,
}


@dataclass(frozen=True)
class PoolingConfig:
    mode: PoolingMode = PoolingMode.MEAN
    normalize: bool = True
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH

    @classmethod
    def from_dir(cls, files: TextModelFiles, max_positions: int | None = None) -> PoolingConfig:
        """Read ``1_Pooling/config.json``, ``modules.json`` and ``sentence_bert_config.json``.

        Missing files mean the defaults: mean pooling, L2 normalisation, 256 tokens (never more
        than the model's ``max_position_embeddings``).
        """
        mode = PoolingMode.MEAN
        if files.pooling_config.is_file():
            mode = _pooling_mode(str(files.pooling_config), read_json_object(files.pooling_config))
        normalize = True
        if files.modules.is_file():
            modules = read_json(files.modules)
            if not isinstance(modules, list):
                raise ModelLoadError(f"{files.modules} must hold a JSON list of modules")
            normalize = any(
                isinstance(m, dict) and str(m.get("type", "")).endswith("Normalize") for m in modules
            )
        max_len = DEFAULT_MAX_SEQ_LENGTH
        if files.sentence_config.is_file():
            raw = read_json_object(files.sentence_config).get("max_seq_length", max_len)
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 2:
                raise ModelLoadError(
                    f"{files.sentence_config}: max_seq_length must be an integer >= 2, got {raw!r}"
                )
            max_len = raw
        if max_positions is not None:
            max_len = min(max_len, max_positions)
        return cls(mode, normalize, max_len)

    def describe(self) -> str:
        return f"{self.mode.value}{' + l2 normalize' if self.normalize else ''}"


def _pooling_mode(source: str, raw: dict[str, Any]) -> PoolingMode:
    named = raw.get("pooling_mode")
    if isinstance(named, str):
        try:
            return PoolingMode(named.removesuffix("_tokens").removesuffix("_token"))
        except ValueError as exc:
            raise ModelLoadError(f"{source}: pooling_mode {named!r} is not supported") from exc
    chosen = [mode for key, mode in _MODE_KEYS.items() if raw.get(key)]
    unsupported = [k for k, v in raw.items() if k.startswith("pooling_mode_") and v]
    unsupported = [k for k in unsupported if k not in _MODE_KEYS]
    if unsupported or len(chosen) != 1:
        raise ModelLoadError(
            f"{source}: exactly one of {', '.join(_MODE_KEYS)} must be true "
            f"(found {', '.join(unsupported + [m.value for m in chosen]) or 'none'})"
        )
    return chosen[0]


def pool(token_embeddings: FloatArray, attention_mask: IntArray, config: PoolingConfig) -> FloatArray:
    """``(rows, seq, hidden)`` token embeddings → ``(rows, hidden)`` float32 sentence embeddings."""
    emb = token_embeddings.astype(np.float32, copy=False)
    mask = attention_mask[:, : emb.shape[1], None].astype(np.float32)
    if config.mode is PoolingMode.MEAN:
        counts = np.maximum(mask.sum(axis=1), np.float32(1e-9))
        out = (emb * mask).sum(axis=1) / counts
    elif config.mode is PoolingMode.CLS:
        out = emb[:, 0, :].copy()
    else:
        out = np.where(mask > 0, emb, np.float32(-1e9)).max(axis=1)
    if config.normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(out, dtype=np.float32)
