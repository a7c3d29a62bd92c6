"""The torch backend: our BERT encoder over memory-mapped safetensors, CPU or CUDA.

On CUDA every bucket's forward pass is captured as a CUDA graph during warmup
(:class:`~warmgate.models.cuda_graphs.CudaGraphPool`) and replayed afterwards; :meth:`seal`
closes capture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from warmgate.config import Device, Oversize
from warmgate.errors import ModelLoadError
from warmgate.models.base import Bucket
from warmgate.models.buckets import BucketPlan
from warmgate.models.cuda_graphs import CudaGraphPool
from warmgate.models.text.bert_config import BertConfig
from warmgate.models.text.encoder import BertEncoder, load_encoder
from warmgate.models.text.model import TextEmbeddingModel
from warmgate.models.text.pooling import FloatArray, IntArray


def resolve_torch_device(requested: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; ``cuda`` without a GPU is a load error."""
    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        raise ModelLoadError("device 'cuda' was requested but torch.cuda.is_available() is False")
    if requested == "cuda" or (requested == "auto" and available):
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class TorchTextModel(TextEmbeddingModel):
    """Text embeddings from ``config.json`` + ``model.safetensors`` with our torch encoder."""

    backend = "torch"

    def __init__(
        self,
        model_dir: Path | str,
        *,
        plan: BucketPlan | None = None,
        oversize: Oversize | str = Oversize.REJECT,
        device: Device | str = Device.AUTO,
        name: str | None = None,
        threads: int = 0,
        cuda_graphs: bool = True,
    ) -> None:
        """``threads``: torch intra-op threads, process-wide (0: leave torch's default)."""
        super().__init__(model_dir, plan=plan, oversize=oversize, device=device, name=name, threads=threads)
        self.use_cuda_graphs = cuda_graphs
        self.bert_config = BertConfig.from_file(self.files.config) if self.files.config.is_file() else None
        self._encoder: BertEncoder | None = None
        self._device = torch.device("cpu")
        self._graphs: CudaGraphPool | None = None

    def _load_backend(self) -> int:
        config = self.bert_config
        if config is None:
            raise ModelLoadError(
                f"config.json not found in {self.files.root}: the torch backend builds the encoder from it"
            )
        weights = self.files.require(self.files.weights, "model.safetensors")
        self._device = resolve_torch_device(self.requested_device)
        if self.threads:
            torch.set_num_threads(self.threads)
        self._encoder = load_encoder(weights, config, self._device)
        if self._device.type == "cuda" and self.use_cuda_graphs:
            self._graphs = CudaGraphPool(self._encoder, self.stats, self._device)
        return config.hidden_size

    def _token_embeddings(
        self, input_ids: IntArray, attention_mask: IntArray, bucket: Bucket | None
    ) -> FloatArray:
        if self._encoder is None:
            raise RuntimeError(f"model {self.name!r} is used before load()")
        ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
        with torch.inference_mode():
            if self._graphs is not None and bucket is not None:
                out = self._graphs.run(bucket, (ids, mask))
            else:
                self.stats.eager_runs += 1
                out = self._encoder(ids.to(self._device), mask.to(self._device))
            return out.float().cpu().numpy()

    def _pads_to_bucket(self) -> bool:
        """Only when CUDA graphs replay fixed shapes; eager torch runs the batch's own shape."""
        return self._graphs is not None

    def seal(self) -> None:
        if self._graphs is not None:
            self._graphs.seal()

    def _backend_metadata(self) -> dict[str, Any]:
        return {
            "device": str(self._device),
            "providers": [],
            "cuda_graphs": self._graphs is not None,
            "torch_version": torch.__version__,
        }
