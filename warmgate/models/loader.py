"""Which backend serves a model directory, decided from what the directory holds.

* ``code/<program>`` (``code/inference.py``)          → the user's SageMaker handler
* ``model.onnx`` + ``tokenizer.json``                   → text embeddings on ONNX Runtime
* ``model.safetensors`` + ``config.json`` + tokenizer  → text embeddings on torch
* ``model.onnx``                                        → any ONNX model (tensors in, tensors out)

Constructing a model is cheap; ``Model.load()`` does the heavy work. Backend modules are imported
here, inside functions, so the server's listener opens before torch or onnxruntime load.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from warmgate.config import Backend, Config
from warmgate.errors import ModelLoadError
from warmgate.models.base import Model

if TYPE_CHECKING:
    from warmgate.models.ort_session import OrtSettings


class Layout(enum.Enum):
    HANDLER = "handler"
    TEXT = "text"
    ONNX = "onnx"


def detect(model_dir: Path, program: str) -> Layout:
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    if (model_dir / "code" / program).is_file():
        return Layout.HANDLER
    has_tokenizer = (model_dir / "tokenizer.json").is_file()
    has_weights = (model_dir / "model.safetensors").is_file() and (model_dir / "config.json").is_file()
    if has_tokenizer and (has_weights or (model_dir / "model.onnx").is_file()):
        return Layout.TEXT
    if (model_dir / "model.onnx").is_file():
        return Layout.ONNX
    found = sorted(p.name for p in model_dir.iterdir())[:20]
    raise ModelLoadError(
        f"{model_dir} holds no servable model: expected code/{program}, model.onnx, or "
        f"model.safetensors + config.json + tokenizer.json; found {found}"
    )


def resolve_model_dir(config: Config, progress: Callable[[str], None]) -> Path:
    """``WARMGATE_MODEL_URI``'s model when set (fetched and unpacked into the cache), else the
    configured directory, else the built-in default model fetched on first use."""
    if config.model_uri:
        from warmgate.models.fetch import cache_root
        from warmgate.models.source import materialize

        progress(f"fetching the model from {config.model_uri}")
        return materialize(config.model_uri, cache_root(), progress)
    if config.model_dir.is_dir() or not config.fetch_default:
        return config.model_dir
    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    progress(f"{config.model_dir} does not exist; using the default model all-MiniLM-L6-v2")
    return fetch_default_model(default_cache_dir(), progress)


def build_model(config: Config, model_dir: Path, name: str) -> Model:
    layout = detect(model_dir, config.program)
    if layout is Layout.HANDLER:
        from warmgate.models.handler import HandlerModel

        return HandlerModel(model_dir, name=name, program=config.program)
    if layout is Layout.TEXT:
        from warmgate.models.buckets import DEFAULT_SEQ_LENS
        from warmgate.models.text import choose_backend, load_text_model

        chosen = choose_backend(model_dir, config.backend.value)
        if chosen == "torch" and find_spec("torch") is None:
            raise ModelLoadError(
                f"{model_dir} holds safetensors weights, which need torch (pip install 'warmgate[torch]'); "
                "or export them once with `warmgate export-onnx` and serve model.onnx"
            )

        return load_text_model(
            model_dir,
            backend=config.backend.value,
            name=name,
            plan=config.bucket_plan(DEFAULT_SEQ_LENS),
            oversize=config.oversize,
            device=config.device,
            threads=config.inference_threads,
            **({"ort": _ort_settings(config)} if chosen == "onnx" else {}),
        )
    if config.backend is Backend.TORCH:
        raise ModelLoadError("backend torch needs model.safetensors + config.json; found model.onnx")
    from warmgate.models.onnx_backend import OnnxModel

    return OnnxModel(
        model_dir / "model.onnx",
        name=name,
        batch_sizes=config.bucket_plan().batch_sizes,
        oversize=config.oversize,
        device=config.device,
        threads=config.inference_threads,
        ort=_ort_settings(config),
    )


def _ort_settings(config: Config) -> OrtSettings:
    from warmgate.models.ort_session import OrtSettings, graph_cache_dir

    return OrtSettings(
        config.ort_threads,
        config.ort_arena,
        cache_dir=graph_cache_dir(config.graph_cache),
        prepacking=config.ort_prepacking,
        denormal_as_zero=config.ort_denormal_as_zero,
        instances=config.ort_instances,
    )
