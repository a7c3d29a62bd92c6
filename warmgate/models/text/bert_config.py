"""A BERT-family architecture read from ``config.json``, and the tensors its weights must hold.

:func:`expected_tensors` is the single description of the checkpoint layout: the safetensors
header is validated against it before anything is built, and the torch encoder's parameter
names are exactly its keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmgate.errors import ModelLoadError
from warmgate.models.text.layout import read_json_object

#: ``hidden_act`` values the encoder implements.
ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu")


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ModelLoadError(
                f"config.json: hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ModelLoadError(
                f"config.json: hidden_act {self.hidden_act!r} is not supported "
                f"(supported: {', '.join(ACTIVATIONS)})"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config.json") -> BertConfig:
        kind = raw.get("position_embedding_type", "absolute")
        if kind != "absolute":
            raise ModelLoadError(
                f"{source}: position_embedding_type {kind!r} is not supported (only 'absolute')"
            )
        ints = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
        )
        values: dict[str, Any] = {}
        for name in ints:
            values[name] = _positive_int(raw, name, source)
        values["type_vocab_size"] = _positive_int(raw, "type_vocab_size", source, default=2)
        values["pad_token_id"] = _int(raw, "pad_token_id", source, default=0)
        eps = raw.get("layer_norm_eps", 1e-12)
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or eps <= 0:
            raise ModelLoadError(f"{source}: layer_norm_eps must be a positive number, got {eps!r}")
        values["layer_norm_eps"] = float(eps)
        act = raw.get("hidden_act", "gelu")
        if not isinstance(act, str):
            raise ModelLoadError(f"{source}: hidden_act must be a string, got {act!r}")
        values["hidden_act"] = act
        return cls(**values)

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        return cls.from_dict(read_json_object(path), source=str(path))


def _int(raw: dict[str, Any], name: str, source: str, default: int | None = None) -> int:
    value = raw.get(name, default)
    if value is None:
        raise ModelLoadError(f"{source}: missing {name!r}")
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModelLoadError(f"{source}: {name} must be an integer, got {value!r}")
    return value


def _positive_int(raw: dict[str, Any], name: str, source: str, default: int | None = None) -> int:
    value = _int(raw, name, source, default)
    if value < 1:
        raise ModelLoadError(f"{source}: {name} must be >= 1, got {value}")
    return value


def expected_tensors(config: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every floating-point tensor the encoder needs, by checkpoint name (no prefix)."""
    h, i = config.hidden_size, config.intermediate_size
    out: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (config.vocab_size, h),
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(config.num_hidden_layers):
        p = f"encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            out[f"{p}attention.self.{proj}.weight"] = (h, h)
            out[f"{p}attention.self.{proj}.bias"] = (h,)
        out[f"{p}attention.output.dense.weight"] = (h, h)
        out[f"{p}attention.output.dense.bias"] = (h,)
        out[f"{p}attention.output.LayerNorm.weight"] = (h,)
        out[f"{p}attention.output.LayerNorm.bias"] = (h,)
        out[f"{p}intermediate.dense.weight"] = (i, h)
        out[f"{p}intermediate.dense.bias"] = (i,)
        out[f"{p}output.dense.weight"] = (h, i)
        out[f"{p}output.dense.bias"] = (h,)
        out[f"{p}output.LayerNorm.weight"] = (h,)
        out[f"{p}output.LayerNorm.bias"] = (h,)
    return out


def unused_tensors(config: BertConfig) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Tensors a checkpoint may carry that the embedding encoder ignores, with allowed shapes.

    ``pooler.*`` is BERT's next-sentence head; ``position_ids`` a persisted buffer.
    """
    h = config.hidden_size
    return {
        "pooler.dense.weight": ((h, h),),
        "pooler.dense.bias": ((h,),),
        "embeddings.position_ids": (
            (1, config.max_position_embeddings),
            (config.max_position_embeddings,),
        ),
    }
