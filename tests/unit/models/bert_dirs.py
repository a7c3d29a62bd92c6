"""Model directories for tests: a tiny random BERT (any BERT-family layout must load)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from warmgate.models.text.bert_config import BertConfig, expected_tensors

TINY_CONFIG: dict[str, Any] = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 0,
}


def random_weights(config: BertConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=gen) * 0.1 for name, shape in expected_tensors(config).items()}


#: Words of :func:`write_wordpiece_tokenizer`'s vocabulary (after the special tokens).
WORDS = ("hello", "a", "the", "word", "manga", "recommend", "one", "piece", "x", "##s")


def write_wordpiece_tokenizer(path: Path) -> Path:
    """A BERT-style ``tokenizer.json`` over a tiny vocabulary, built offline."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(("[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS))}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def write_bert_dir(
    root: Path,
    minilm_dir: Path | None,
    tensors: dict[str, torch.Tensor] | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """A BERT directory: ``config`` (default :data:`TINY_CONFIG`), ``tensors`` (default random
    weights for it) and MiniLM's tokenizer (a tiny WordPiece one when ``minilm_dir`` is None);
    no pooling config (defaults apply)."""
    raw = config or TINY_CONFIG
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    if minilm_dir is None:
        write_wordpiece_tokenizer(root / "tokenizer.json")
    else:
        shutil.copy(minilm_dir / "tokenizer.json", root / "tokenizer.json")
    weights = tensors if tensors is not None else random_weights(BertConfig.from_dict(raw))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(root / "model.safetensors"))
    return root


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
