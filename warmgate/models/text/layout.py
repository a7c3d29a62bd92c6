"""Where the files of a sentence-transformers model directory live, and how its JSON is read.

::

    config.json                  BERT-family architecture (torch backend and ONNX export)
    model.safetensors            weights (torch backend)
    model.onnx                   exported graph (ONNX backend)
    tokenizer.json               HF ``tokenizers`` file
    sentence_bert_config.json    max_seq_length (optional)
    1_Pooling/config.json        pooling mode (optional: mean)
    modules.json                 module list; a ``Normalize`` module turns L2 normalisation on
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warmgate.errors import ModelLoadError


@dataclass(frozen=True)
class TextModelFiles:
    """Paths of one model directory (the files need not exist)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def onnx(self) -> Path:
        return self.root / "model.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer.json"

    @property
    def sentence_config(self) -> Path:
        return self.root / "sentence_bert_config.json"

    @property
    def pooling_config(self) -> Path:
        return self.root / "1_Pooling" / "config.json"

    @property
    def modules(self) -> Path:
        return self.root / "modules.json"

    def require(self, path: Path, what: str) -> Path:
        """``path`` when it is a file, otherwise a :class:`ModelLoadError` saying what is missing."""
        if not path.is_file():
            raise ModelLoadError(f"{what} not found: {path} does not exist in {self.root}")
        return path


def read_json(path: Path) -> Any:
    """Parse a JSON file; unreadable or malformed files become :class:`ModelLoadError`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc


def read_json_object(path: Path) -> dict[str, Any]:
    """:func:`read_json` for files whose top level must be an object."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value
