"""The ONNX Runtime backend: an exported ``model.onnx`` with the shared tokenizer and pooling.

The graph takes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when it declares it)
and returns token embeddings ``(batch, seq, hidden)``, the layout of :func:`export_onnx` and of
Hugging Face / optimum exports. Providers are chosen explicitly and verified after the session
starts. ``session.intra_op.allow_spinning`` is off: spinning threads steal the event loop's time
on small machines (DESIGN §8).

onnxruntime is imported in :meth:`OnnxTextModel.load`, so the torch path never needs it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from warmgate.config import Device, Oversize
from warmgate.errors import ModelLoadError
from warmgate.models.base import Bucket
from warmgate.models.buckets import BucketPlan
from warmgate.models.ort_session import CUDA, OrtSettings, Session, open_session
from warmgate.models.text.model import TextEmbeddingModel
from warmgate.models.text.pooling import FloatArray, IntArray

log = logging.getLogger(__name__)

# The most tokens (rows × padded sequence) one session.run sees: a larger batch runs as chunks of
# rows. A transformer's working memory grows with rows × seq (activations) and rows × seq²
# (attention scores, per head), so without this the 16 × 256 bucket alone takes MiniLM's process
# from 180 MB to 510 MB (scripts/bench_memory.py).
DEFAULT_RUN_TOKENS = 1024
# The most rows × seq² one session.run sees: a long text's run is bounded by its attention as well
# (rows of 256 tokens: 1 a run; 128: 2; 64: 8; 32 or fewer: the token bound). The peak a run adds
# to MiniLM's RSS went from 37 MB (4 × 256) to 20 MB (32 × 32), the largest left.
DEFAULT_RUN_SCORES = 32 * 1024
REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")


class OnnxTextModel(TextEmbeddingModel):
    """Text embeddings from ``model.onnx`` through ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        plan: BucketPlan | None = None,
        oversize: Oversize | str = Oversize.REJECT,
        device: Device | str = Device.AUTO,
        name: str | None = None,
        threads: int = 0,
        onnx_path: Path | str | None = None,
        ort: OrtSettings | None = None,
        run_tokens: int = DEFAULT_RUN_TOKENS,
        run_scores: int = DEFAULT_RUN_SCORES,
    ) -> None:
        """``threads``: ONNX Runtime intra-op threads (0: one per core); ``ort`` (threads, arena,
        graph cache) wins over it when given. ``run_tokens``: the most rows × sequence one
        ``session.run`` takes, ``run_scores`` the most rows × sequence² (a batch larger runs in
        chunks of rows; 0: no such bound)."""
        super().__init__(model_dir, plan=plan, oversize=oversize, device=device, name=name, threads=threads)
        self.onnx_path = Path(onnx_path) if onnx_path is not None else self.files.onnx
        self.ort = ort or OrtSettings(threads=threads)
        self.run_tokens = run_tokens
        self.run_scores = run_scores
        self._session: Session | None = None
        self._input_names: tuple[str, ...] = ()
        self._output_name = ""
        self._providers: list[str] = []

    def _load_backend(self) -> int:
        path = self.files.require(self.onnx_path, "model.onnx")
        session = open_session(path, self.requested_device, self.ort)
        active = session.get_providers()
        self._input_names = self._check_inputs(path, [i.name for i in session.get_inputs()])
        self._output_name, dimension = self._pick_output(path, session.get_outputs())
        self._session, self._providers = session, active
        return dimension

    @staticmethod
    def _check_inputs(path: Path, names: Sequence[str]) -> tuple[str, ...]:
        missing = [n for n in REQUIRED_INPUTS if n not in names]
        unknown = [n for n in names if n not in REQUIRED_INPUTS + OPTIONAL_INPUTS]
        if missing or unknown:
            raise ModelLoadError(
                f"{path}: a text encoder graph takes {', '.join(REQUIRED_INPUTS)} "
                f"(and optionally {', '.join(OPTIONAL_INPUTS)}); "
                f"missing {missing or 'none'}, unexpected {unknown or 'none'}"
            )
        return tuple(names)

    def _pick_output(self, path: Path, outputs: Sequence[Any]) -> tuple[str, int]:
        by_name = {o.name: o for o in outputs}
        chosen = next((by_name[n] for n in TOKEN_OUTPUTS if n in by_name), None)
        chosen = chosen or next((o for o in outputs if len(o.shape) == 3), None)
        if chosen is None or len(chosen.shape) != 3:
            raise ModelLoadError(
                f"{path}: no token-embedding output (batch, seq, hidden) among "
                f"{', '.join(f'{o.name}{o.shape}' for o in outputs)}"
            )
        hidden = chosen.shape[2]
        if not isinstance(hidden, int):
            if self.dimension is None:
                raise ModelLoadError(f"{path}: output {chosen.name} has no static hidden size")
            hidden = self.dimension
        if self.dimension is not None and hidden != self.dimension:
            raise ModelLoadError(
                f"{path}: output {chosen.name} has hidden size {hidden}, config.json says {self.dimension}"
            )
        return chosen.name, hidden

    def _token_embeddings(
        self, input_ids: IntArray, attention_mask: IntArray, bucket: Bucket | None
    ) -> FloatArray:
        if self._session is None:
            raise RuntimeError(f"model {self.name!r} is used before load()")
        available = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        feed = {name: available[name] for name in self._input_names}
        self.stats.eager_runs += 1
        (out,) = self._session.run([self._output_name], feed)
        return np.asarray(out, dtype=np.float32)

    @property
    def instances(self) -> int:
        return self._session.instances if self._session else 1

    def _pads_to_bucket(self) -> bool:
        """Only on CUDA: the CPU provider has no per-shape compilation, so a batch runs at its
        own rows × longest text (17 tokens, not the 32 of its bucket)."""
        return CUDA in self._providers

    def _rows_per_run(self, seq: int) -> int | None:
        seq = max(seq, 1)
        limits = ((self.run_tokens, seq), (self.run_scores, seq * seq))
        bounds = [limit // width for limit, width in limits if limit]
        return max(1, min(bounds)) if bounds else None

    def _backend_metadata(self) -> dict[str, Any]:
        return {
            "device": "cuda" if CUDA in self._providers else "cpu",
            "providers": list(self._providers),
            "intra_op_threads": self.ort.threads,
            "instances": self.instances,
            "run_tokens": self.run_tokens,
            "run_scores": self.run_scores,
            "arena": self.ort.arena.value,
            "graph_cache": self._session.graph_cache if self._session else "off",
            "onnx_path": str(self.onnx_path),
        }
