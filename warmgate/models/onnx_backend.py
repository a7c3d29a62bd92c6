"""ONNX Runtime backend for any ``model.onnx``: inputs, dtypes and shapes from its own signature.

When every input's first axis is dynamic the model is batchable: requests are concatenated along
axis 0 and padded with zero rows to the batch bucket, and the padding rows are sliced off the
outputs. Other dynamic axes are not padded (a generic model's padding semantics are unknown):
requests with different sizes there never share a batch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from warmgate.config import Device, Oversize
from warmgate.errors import BadRequest, ModelLoadError, PayloadTooLarge
from warmgate.models.base import Bucket, Item, ModelKind, ModelStats, SyntheticRequest, TensorSpec
from warmgate.models.buckets import BucketPlan
from warmgate.models.memory import rss_bytes
from warmgate.models.ort_session import OrtSettings, Session, open_session

log = logging.getLogger("warmgate.models.onnx")

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _spec(arg: Any) -> TensorSpec:
    if arg.type not in _ORT_DTYPES:
        raise ModelLoadError(f"input/output {arg.name!r} has unsupported type {arg.type}")
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
    return TensorSpec(arg.name, _ORT_DTYPES[arg.type], shape)


class OnnxModel:
    """A ``Model`` (kind TENSOR) over one ONNX file."""

    kind = ModelKind.TENSOR

    def __init__(
        self,
        path: Path,
        name: str,
        batch_sizes: Sequence[int],
        oversize: Oversize = Oversize.EAGER,
        device: Device = Device.AUTO,
        threads: int = 0,
        ort: OrtSettings | None = None,
    ) -> None:
        """``ort`` (threads, arena, graph cache) wins over ``threads`` when given."""
        self.path, self.name = path, name
        self.stats = ModelStats()
        self._batch_sizes = tuple(batch_sizes)
        self._oversize, self._device = oversize, device
        self._ort = ort or OrtSettings(threads=threads)
        self._session: Session | None = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        self._plan = BucketPlan(self._batch_sizes)
        self._batchable = False

    # --- load --------------------------------------------------------------------------------

    def load(self) -> None:
        before = rss_bytes()
        self._session = open_session(self.path, self._device, self._ort)
        self.stats.extra["memory_bytes"] = float(max(0, rss_bytes() - before))
        self._inputs = tuple(_spec(a) for a in self._session.get_inputs())
        self._outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._batchable = all(s.shape and s.shape[0] is None for s in self._inputs)
        if not self._batchable:
            fixed = self._inputs[0].shape[0] if self._inputs[0].shape else 1
            self._plan = BucketPlan((fixed or 1,))
        log.info(
            "loaded %s: inputs %s, outputs %s, batch buckets %s",
            self.path.name,
            [s.to_json() for s in self._inputs],
            [s.name for s in self._outputs],
            self._plan.batch_sizes,
        )

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return self._inputs

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return self._outputs

    @property
    def max_batch(self) -> int:
        return self._plan.max_batch

    @property
    def fixed_batch(self) -> bool:
        """A model whose inputs do not all have a dynamic first axis runs one request per call."""
        return not self._batchable

    def buckets(self) -> Sequence[Bucket]:
        return self._plan.buckets()

    # --- request path ------------------------------------------------------------------------

    def prepare(self, payload: Any) -> Item:
        tensors: dict[str, np.ndarray] = payload
        if not self._batchable:
            return Item(key=_shape_key(tensors), size=1, payload=tensors, bucket=self._plan.select(1))
        rows = {name: int(a.shape[0]) for name, a in tensors.items()}
        if len(set(rows.values())) != 1:
            raise BadRequest(f"inputs disagree on the batch size (axis 0): {rows}")
        size = next(iter(rows.values()))
        if size > self._plan.max_batch and self._oversize is Oversize.REJECT:
            raise PayloadTooLarge(f"batch of {size} rows exceeds the largest bucket ({self._plan.max_batch})")
        key = _shape_key(tensors, skip_batch=True)
        return Item(key=key, size=size, payload=tensors, bucket=self._plan.select(size))

    def infer(self, items: Sequence[Item]) -> list[Any]:
        feeds = {
            spec.name: np.concatenate([it.payload[spec.name] for it in items])
            if self._batchable
            else items[0].payload[spec.name]
            for spec in self._inputs
        }
        rows = sum(it.size for it in items)
        bucket = self._plan.batch_for(rows) if self._batchable else None
        if self._batchable and bucket is None:
            self.stats.out_of_bucket += 1
        if bucket is not None and bucket > rows:
            feeds = {k: _pad_rows(v, bucket) for k, v in feeds.items()}
        self.stats.eager_runs += 1
        names = [s.name for s in self._outputs]
        if self._session is None:
            raise RuntimeError(f"model {self.name!r} is used before load()")
        results = dict(zip(names, self._session.run(names, feeds), strict=True))
        if not self._batchable:
            return [results]
        padded = bucket or rows
        outs: list[Any] = []
        start = 0
        for it in items:
            outs.append({k: _rows(v, padded, start, start + it.size) for k, v in results.items()})
            start += it.size
        return outs

    def synthetic_request(self, bucket: Bucket) -> SyntheticRequest:
        inputs = {}
        for spec in self._inputs:
            dims = [d or 1 for d in spec.shape]
            if self._batchable:
                dims[0] = bucket.batch
            inputs[spec.name] = np.zeros(dims, dtype=spec.dtype).tolist()
        body = json.dumps({"inputs": inputs}).encode()
        return SyntheticRequest(f"synthetic-{bucket.label()}", body, "application/json")

    @property
    def instances(self) -> int:
        return self._session.instances if self._session else 1

    def warmup_hook(self) -> None:
        """Nothing beyond the synthetic shapes the warmup runner sends."""

    def seal(self) -> None:
        """ONNX Runtime keeps no capture state of ours; nothing to close."""

    def metadata(self) -> Mapping[str, Any]:
        return {
            "backend": "onnxruntime",
            "providers": self._session.get_providers() if self._session else [],
            "graph_cache": self._session.graph_cache if self._session else "off",
            "arena": self._ort.arena.value,
            "instances": self.instances,
            "batchable": self._batchable,
            "batch_sizes": list(self._plan.batch_sizes),
        }


def _shape_key(tensors: Mapping[str, np.ndarray], skip_batch: bool = False) -> tuple[Any, ...]:
    start = 1 if skip_batch else 0
    return tuple((name, a.shape[start:]) for name, a in sorted(tensors.items()))


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    pad = np.zeros((rows - array.shape[0], *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([array, pad])


def _rows(array: np.ndarray, padded: int, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a batched output; outputs without a batch axis are returned whole."""
    if array.ndim and array.shape[0] == padded:
        return array[start:stop]
    return array
