"""Built-in text embeddings: BERT-family sentence-transformers models (MiniLM and kin).

``load_text_model(model_dir)`` picks the backend: ONNX Runtime over ``model.onnx`` or our torch
encoder over ``model.safetensors``. Importing this package imports neither torch nor
onnxruntime; :class:`TorchTextModel` and :func:`export_onnx` are resolved on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warmgate.models.text.loader import choose_backend, load_text_model
from warmgate.models.text.model import TextEmbeddingModel, default_plan
from warmgate.models.text.onnx_backend import OnnxTextModel

if TYPE_CHECKING:
    from warmgate.models.text.export import export_onnx
    from warmgate.models.text.torch_backend import TorchTextModel

__all__ = [
    "OnnxTextModel",
    "TextEmbeddingModel",
    "TorchTextModel",
    "choose_backend",
    "default_plan",
    "export_onnx",
    "load_text_model",
]


def __getattr__(name: str) -> Any:
    if name == "TorchTextModel":
        from warmgate.models.text.torch_backend import TorchTextModel

        return TorchTextModel
    if name == "export_onnx":
        from warmgate.models.text.export import export_onnx

        return export_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
