"""Pick and build the text backend for a model directory."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Literal

from warmgate.errors import ConfigError, ModelLoadError
from warmgate.models.text.layout import TextModelFiles
from warmgate.models.text.model import TextEmbeddingModel

log = logging.getLogger(__name__)

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
    _passive_openmp()
    from warmgate.models.text.torch_backend import TorchTextModel

    return TorchTextModel(model_dir, **options)


def _passive_openmp() -> None:
    """Make torch's OpenMP threads sleep, not spin, while idle (unless the user chose).

    The torch analogue of ONNX Runtime's ``allow_spinning = 0`` (DESIGN §8): on a small
    machine, spinning workers starve the event loop and each other. Measured on 2 busy cores,
    MiniLM batch 1: 820 ms with spinning, 26 ms passive. libgomp reads the variable once, when
    torch is first imported, so this only acts before that.
    """
    if "torch" in sys.modules:
        return
    if os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE") == "PASSIVE":
        log.info("OMP_WAIT_POLICY=PASSIVE for torch's CPU threads (set it to ACTIVE to spin)")
