"""CUDA graph capture and replay, one graph per shape bucket.

The bucket lookup is pure and lives in :mod:`warmgate.models.buckets`; this module only captures
and replays. Lifecycle, as in vLLM's dispatcher:

* **open** (during warmup): the first request of a bucket runs a few eager warm iterations on a
  side stream, then captures one :class:`torch.cuda.CUDAGraph` with static input buffers and a
  static output. All graphs share one memory pool (they never run concurrently: one inference
  thread replays one graph at a time, and each output is copied out before the next replay).
* :meth:`CudaGraphPool.seal` (warmup is over): capture is closed. A captured bucket is replayed
  (copy in, replay, copy out); an unseen bucket runs eagerly and counts ``graphs_missed``.

Counters go to the backend's :class:`~warmgate.models.base.ModelStats`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from warmgate.models.base import Bucket, ModelStats

GraphFn = Callable[..., torch.Tensor]

#: Eager iterations before capture: lets cuBLAS/cuDNN pick kernels and allocate workspaces.
DEFAULT_WARM_ITERATIONS = 3


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor


class CudaGraphPool:
    """Captured graphs of ``fn`` keyed by :class:`Bucket`.

    ``fn`` takes device tensors (one per input, in a fixed order) and returns one tensor. It must
    be capturable: no host synchronisation, no data-dependent shapes. Call :meth:`run` inside the
    same autograd mode (e.g. ``torch.inference_mode()``) for capture and replay.
    """

    def __init__(
        self,
        fn: GraphFn,
        stats: ModelStats,
        device: torch.device,
        warm_iterations: int = DEFAULT_WARM_ITERATIONS,
    ) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a cuda device, got {device}")
        self._fn = fn
        self._stats = stats
        self._device = device
        self._warm_iterations = warm_iterations
        self._graphs: dict[Bucket, _Captured] = {}
        self._mempool: Any = None  # torch's opaque pool handle
        self._sealed = False
        self._lock = threading.Lock()

    @property
    def sealed(self) -> bool:
        return self._sealed

    def captured(self) -> list[Bucket]:
        return sorted(self._graphs)

    def seal(self) -> None:
        """Close capture: from now on unseen buckets run eagerly and count as misses."""
        self._sealed = True

    def run(self, bucket: Bucket, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``fn(*inputs)`` through the bucket's graph (capturing it first while open).

        ``inputs`` may live on the host; they are copied into the static buffers. The returned
        tensor is the graph's static output: copy it before the next call.
        """
        with self._lock:
            captured = self._graphs.get(bucket)
            if captured is None:
                if self._sealed:
                    self._stats.graphs_missed += 1
                    self._stats.eager_runs += 1
                    return self._fn(*(x.to(self._device) for x in inputs))
                captured = self._capture(bucket, inputs)
            else:
                for static, new in zip(captured.inputs, inputs, strict=True):
                    static.copy_(new, non_blocking=True)
            captured.graph.replay()
            self._stats.graphs_replayed += 1
            return captured.output

    def _capture(self, bucket: Bucket, inputs: Sequence[torch.Tensor]) -> _Captured:
        static = tuple(x.to(self._device, copy=True) for x in inputs)
        side = torch.cuda.Stream(device=self._device)  # type: ignore[no-untyped-call]
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(self._warm_iterations):
                self._fn(*static)
        torch.cuda.current_stream(self._device).wait_stream(side)
        torch.cuda.synchronize(self._device)
        if self._mempool is None:
            self._mempool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._mempool):
            output = self._fn(*static)
        captured = _Captured(graph, static, output)
        self._graphs[bucket] = captured
        self._stats.graphs_captured += 1
        return captured
