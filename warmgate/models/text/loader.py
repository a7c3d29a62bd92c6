"""Pick and build the text backend for a model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from warmgate.errors import ConfigError, ModelLoadError
from warmgate.models.text.layout import TextModelFiles
from warmgate.models.text.model import TextEmbeddingModel

Backend = Literal["auto", "torch", "onnx"]


def choose_backend(model_dir: Path | str, backend: str = "auto") -> Literal["torch", "onnx"]:
    """``auto``: ONNX Runtime when ``model.onnx`` is present (faster on CPU), else torch when
    ``model.safetensors`` is; an explicit choice is returned as is."""
    if backend in ("torch", "onnx"):
        return "torch" if backend == "torch" else "onnx"
    if backend != "auto":
        raise ConfigError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
    files = TextModelFiles(Path(model_dir))
    if files.onnx.is_file():
        return "onnx"
    if files.weights.is_file():
        return "torch"
    raise ModelLoadError(
        f"{files.root} holds neither model.onnx nor model.safetensors; "
        "fetch a model or export one with `warmgate export-onnx`"
    )


def load_text_model(
    model_dir: Path | str, backend: Backend | str = "auto", **options: Any
) -> TextEmbeddingModel:
    """Build (not load) the text model of ``model_dir``; call ``.load()`` on it off the event loop.

    ``options`` go to the backend's constructor: ``plan``, ``oversize``, ``device``, ``name``,
    plus ``cuda_graphs`` (torch) or ``intra_op_threads`` (onnx).
    """
    chosen = choose_backend(model_dir, backend)
    if chosen == "onnx":
        from warmgate.models.text.onnx_backend import OnnxTextModel

        return OnnxTextModel(model_dir, **options)
    from warmgate.models.text.torch_backend import TorchTextModel

    return TorchTextModel(model_dir, **options)
