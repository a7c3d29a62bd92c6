"""Read and validate a ``model.safetensors`` header before a single weight is touched.

A safetensors file is an 8-byte little-endian header length, a JSON header
(``name -> {dtype, shape, data_offsets}``) and a flat data region. This module parses the header
itself (pure Python, no torch), checks that it is self-consistent and that the data region is all
there, and compares it with :func:`~warmgate.models.text.bert_config.expected_tensors`. Every
problem is a :class:`ModelLoadError` that names the file and the tensor.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmgate.errors import ModelLoadError
from warmgate.models.text.bert_config import BertConfig, expected_tensors, unused_tensors

#: Bytes per element of each safetensors dtype.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOAT_DTYPES = frozenset({"F32", "F16", "BF16"})
INT_DTYPES = frozenset({"I64", "I32"})
MAX_HEADER_BYTES = 100 * 1024 * 1024
_ANCHOR = "embeddings.word_embeddings.weight"
_MAX_LISTED = 8


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets relative to the data region
    end: int


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Parse and sanity-check the header of ``path``; truncation and garbage are caught here."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ModelLoadError(
                    f"{path}: file is {size} bytes, too short for a safetensors header (truncated download?)"
                )
            (length,) = struct.unpack("<Q", prefix)
            if length == 0 or length > MAX_HEADER_BYTES or length > size - 8:
                raise ModelLoadError(
                    f"{path}: header length {length} does not fit a {size}-byte file: "
                    "not a safetensors file, or truncated"
                )
            raw = f.read(length)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path}: header is not valid JSON ({exc}); not a safetensors file") from exc
    if not isinstance(header, dict):
        raise ModelLoadError(f"{path}: header must be a JSON object")
    data_size = size - 8 - length
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        info = _tensor_info(path, name, entry)
        if info.end > data_size:
            raise ModelLoadError(
                f"{path}: tensor {name!r} ends at byte {info.end} of the data region but the file "
                f"holds only {data_size} bytes of data (truncated file)"
            )
        tensors[name] = info
    return tensors


def _tensor_info(path: Path, name: str, entry: Any) -> TensorInfo:
    bad = f"{path}: tensor {name!r} has a malformed header entry"
    if not isinstance(entry, dict):
        raise ModelLoadError(f"{bad}: {entry!r}")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise ModelLoadError(f"{bad}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_nonneg_int(d) for d in shape):
        raise ModelLoadError(f"{bad}: shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_nonneg_int(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise ModelLoadError(f"{bad}: data_offsets {offsets!r}")
    start, end = offsets
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - start != expected:
        raise ModelLoadError(f"{bad}: {dtype}{shape} needs {expected} bytes, data_offsets span {end - start}")
    return TensorInfo(name, dtype, tuple(shape), start, end)


def _nonneg_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def canonical_name(stored: str, prefix: str) -> str:
    """Strip the checkpoint prefix and map old LayerNorm names (gamma/beta) to weight/bias."""
    name = stored[len(prefix) :]
    if name.endswith(".LayerNorm.gamma"):
        return name[: -len("gamma")] + "weight"
    if name.endswith(".LayerNorm.beta"):
        return name[: -len("beta")] + "bias"
    return name


def validate_bert_checkpoint(path: Path, config: BertConfig) -> dict[str, str]:
    """Check ``path`` against ``config``; return ``{parameter name: stored tensor name}``.

    Accepts a ``bert.`` (or any ``<x>.``) prefix, LayerNorm gamma/beta names and F32/F16/BF16
    weights; tolerates the unused pooler head and ``position_ids`` buffer. A missing, extra or
    mis-shaped tensor, or one of the wrong dtype, is a :class:`ModelLoadError` naming it.
    """
    tensors = read_header(path)
    prefix = _find_prefix(path, tensors)
    expected = expected_tensors(config)
    unused = unused_tensors(config)
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for stored, info in sorted(tensors.items()):
        name = canonical_name(stored, prefix) if stored.startswith(prefix) else None
        if name in expected:
            if name in mapping:
                problems.append(f"tensor {name!r} appears twice ({mapping[name]!r}, {stored!r})")
            elif info.shape != expected[name]:
                problems.append(
                    f"tensor {stored!r} has shape {list(info.shape)}, "
                    f"config.json implies {list(expected[name])}"
                )
            elif info.dtype not in FLOAT_DTYPES:
                problems.append(
                    f"tensor {stored!r} has dtype {info.dtype}, expected one of "
                    f"{', '.join(sorted(FLOAT_DTYPES))}"
                )
            mapping.setdefault(name, stored)
        elif name in unused:
            allowed = INT_DTYPES if name.endswith("position_ids") else FLOAT_DTYPES
            if info.shape not in unused[name] or info.dtype not in allowed:
                problems.append(f"tensor {stored!r} has unexpected {info.dtype}{list(info.shape)}")
        else:
            problems.append(f"unexpected tensor {stored!r} (not part of a BERT encoder)")
    problems.extend(f"missing tensor {prefix + name!r}" for name in expected if name not in mapping)
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED])
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise ModelLoadError(
            f"{path} does not match config.json ({len(problems)} problem"
            f"{'s' if len(problems) > 1 else ''}): {listed}{more}"
        )
    return mapping


def _find_prefix(path: Path, tensors: dict[str, TensorInfo]) -> str:
    anchors = sorted(n for n in tensors if n == _ANCHOR or n.endswith("." + _ANCHOR))
    if not anchors:
        raise ModelLoadError(
            f"{path}: missing tensor {_ANCHOR!r} (with or without a 'bert.' prefix); "
            "is this a BERT-family encoder?"
        )
    if len(anchors) > 1:
        raise ModelLoadError(f"{path}: several encoders in one file: {', '.join(anchors)}")
    return anchors[0][: -len(_ANCHOR)]
