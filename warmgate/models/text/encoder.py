"""A BERT-family encoder in plain torch, and its loading from a validated ``model.safetensors``.

Module and parameter names follow the Hugging Face checkpoint layout, so the parameter names are
exactly the keys of :func:`~warmgate.models.text.bert_config.expected_tensors`. The forward pass
returns the last hidden state ``(batch, seq, hidden)``; pooling happens elsewhere, shared with the
ONNX backend. Masked positions get ``finfo.min`` added to their attention scores, so they weigh
exactly zero and padding never changes a row's result.

This module imports torch; only the torch backend and the ONNX exporter import it.
"""

from __future__ import annotations

from pathlib import Path

import safetensors
import torch
from torch import nn
from torch.nn import functional as F

from warmgate.errors import ModelLoadError
from warmgate.models.text.bert_config import BertConfig
from warmgate.models.text.checkpoint import validate_bert_checkpoint


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)[None, :, :]
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(x)  # type: ignore[no-any-return]


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_dim = c.head_dim
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=additive_mask)
        b, _, s, _ = ctx.shape
        return ctx.transpose(1, 2).reshape(b, s, self.heads * self.head_dim)


class DenseAddNorm(nn.Module):
    """``LayerNorm(dense(x) + residual)``: BERT's ``*.output`` blocks."""

    def __init__(self, d_in: int, d_out: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)  # type: ignore[no-any-return]


class Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseAddNorm(c.hidden_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, additive_mask), x)  # type: ignore[no-any-return]


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = c.hidden_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dense(x)
        if self.act == "relu":
            return F.relu(h)
        if self.act == "gelu":
            return F.gelu(h)
        return F.gelu(h, approximate="tanh")


class Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseAddNorm(c.intermediate_size, c.hidden_size, c.layer_norm_eps)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        a = self.attention(x, additive_mask)
        return self.output(self.intermediate(a), a)  # type: ignore[no-any-return]


class Stack(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class BertEncoder(nn.Module):
    """``(input_ids, attention_mask[, token_type_ids])`` → last hidden state."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Stack(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        dtype = x.dtype
        keep = attention_mask[:, None, None, :].to(dtype)
        additive_mask = (1.0 - keep) * torch.finfo(dtype).min
        for layer in self.encoder.layer:
            x = layer(x, additive_mask)
        return x  # type: ignore[no-any-return]


def load_encoder(weights: Path, config: BertConfig, device: str | torch.device = "cpu") -> BertEncoder:
    """Validate ``weights`` against ``config``, then build the encoder from a memory map.

    The header is checked first (:func:`validate_bert_checkpoint`), so a wrong file fails with
    the tensor's name before any module is allocated. The module is built on the ``meta`` device
    and takes the memory-mapped tensors as its parameters (cast to float32) without a second copy.
    """
    mapping = validate_bert_checkpoint(weights, config)
    state: dict[str, torch.Tensor] = {}
    try:
        with safetensors.safe_open(str(weights), framework="pt", device="cpu") as f:
            for name, stored in mapping.items():
                state[name] = f.get_tensor(stored).to(torch.float32)
    except safetensors.SafetensorError as exc:
        raise ModelLoadError(f"{weights}: cannot read tensors: {exc}") from exc
    with torch.device("meta"):
        encoder = BertEncoder(config)
    encoder.load_state_dict(state, strict=True, assign=True)
    return encoder.eval().to(device)
