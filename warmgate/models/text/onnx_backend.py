"""The ONNX Runtime backend: an exported ``model.onnx`` with the shared tokenizer and pooling.

The graph takes ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` when it declares it)
and returns token embeddings ``(batch, seq, hidden)``, the layout of :func:`export_onnx` and of
Hugging Face / optimum exports. Providers are chosen explicitly and verified after the session
starts. ``session.intra_op.allow_spinning`` is off: spinning threads steal the event loop's time
on small machines (DESIGN §8).

onnxruntime is imported in :meth:`OnnxTextModel.load`, so the torch path never needs it.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from warmgate.errors import ModelLoadError
from warmgate.models.base import Bucket
from warmgate.models.buckets import BucketPlan
from warmgate.models.text.model import OversizePolicy, TextEmbeddingModel
from warmgate.models.text.pooling import FloatArray, IntArray

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
REQUIRED_INPUTS = ("input_ids", "attention_mask")
OPTIONAL_INPUTS = ("token_type_ids",)
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
_ORT_ERRORS = (
    "Fail",
    "InvalidArgument",
    "InvalidGraph",
    "InvalidProtobuf",
    "NoSuchFile",
    "NoModel",
    "NotImplemented",
    "RuntimeException",
    "EPFail",
)


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """The provider list for ``device`` ("auto", "cpu", "cuda"): CUDA first when wanted and
    present, CPU always last. ``cuda`` without the CUDA provider is a :class:`ModelLoadError`."""
    if device == "cuda" and CUDA not in available:
        raise ModelLoadError(
            f"device 'cuda' was requested but onnxruntime offers only {', '.join(available)}; "
            "install onnxruntime-gpu"
        )
    if device in ("cuda", "auto") and CUDA in available:
        return [CUDA, CPU]
    return [CPU]


class OnnxTextModel(TextEmbeddingModel):
    """Text embeddings from ``model.onnx`` through ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        plan: BucketPlan | None = None,
        oversize: OversizePolicy | enum.Enum | str = OversizePolicy.REJECT,
        device: enum.Enum | str = "auto",
        name: str | None = None,
        threads: int = 0,
        onnx_path: Path | str | None = None,
    ) -> None:
        """``threads``: ONNX Runtime intra-op threads (0: one per core)."""
        super().__init__(model_dir, plan=plan, oversize=oversize, device=device, name=name, threads=threads)
        self.onnx_path = Path(onnx_path) if onnx_path is not None else self.files.onnx
        self._session: Any = None
        self._input_names: tuple[str, ...] = ()
        self._output_name = ""
        self._providers: list[str] = []

    def _load_backend(self) -> int:
        import onnxruntime as ort

        path = self.files.require(self.onnx_path, "model.onnx")
        providers = choose_providers(self.requested_device, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        errors = tuple(getattr(ort.capi.onnxruntime_pybind11_state, n) for n in _ORT_ERRORS)
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except errors as exc:
            raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from exc
        active = list(session.get_providers())
        if providers[0] not in active:
            raise ModelLoadError(
                f"{path}: requested provider {providers[0]} is not active after session start "
                f"(active: {', '.join(active)})"
            )
        if CUDA in active:
            log.info("onnxruntime CUDA graphs not used for %s: its sequence axis is dynamic", path)
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

    def _backend_metadata(self) -> dict[str, Any]:
        return {
            "device": "cuda" if CUDA in self._providers else "cpu",
            "providers": list(self._providers),
            "intra_op_threads": self.threads,
            "onnx_path": str(self.onnx_path),
        }
