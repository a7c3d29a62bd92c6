"""The contract between the server and every model backend.

The server decodes an HTTP body into a *payload* according to the model's :class:`ModelKind`:

* ``TENSOR``  → ``dict[str, numpy.ndarray]`` (named input tensors, dtype already cast)
* ``TEXT``    → ``list[str]`` (one embedding is produced per text)
* ``HANDLER`` → :class:`RawPayload` (bytes untouched: a user ``code/inference.py`` decodes them)

The request path is then::

    item = model.prepare(payload)             # event loop: validate, tokenize, pick the bucket
    outputs = model.infer([item, item2, ...]) # inference thread: items share one ``key``
    # outputs[i] is dict[str, ndarray] (TENSOR), an ndarray of embeddings (TEXT)
    # or RawPayload (HANDLER)

``Item.key`` is what the batcher groups by (normally the shape :class:`Bucket`), ``Item.size``
is the rows the item adds to a batch, ``Item.bucket`` the padded shape the item runs at when it
is alone in its batch (None: larger than every bucket, or no buckets at all). The model picks it
once in ``prepare``; warmup and the shape recorder read it from there. ``Item.runs_at``, when the
model knows it, is the shape a run of the item alone actually computes (a text backend that does
not pad to the bucket runs rows × the longest text); warmup predicts costs from it. ``infer`` receives only
items with equal keys and a total size no larger than ``max_batch`` (a single larger item runs
alone); when ``fixed_batch`` is true it receives exactly one item per call. The server builds its
batcher from these two limits after ``load()``. Models know nothing of HTTP.

Every hook the server calls is declared here: ``load``, ``warmup_hook`` and ``seal`` run on the
inference thread, in that order, before the replica is READY.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class ModelKind(enum.Enum):
    TENSOR = "tensor"
    TEXT = "text"
    HANDLER = "handler"


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model's signature. ``None`` in ``shape`` is a dynamic axis."""

    name: str
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.dtype,
            "shape": [-1 if d is None else d for d in self.shape],
        }


@dataclass(frozen=True, order=True)
class Bucket:
    """A padded shape: ``batch`` rows × ``seq`` positions (``seq`` is 0 when there is no sequence axis)."""

    batch: int
    seq: int = 0

    def label(self) -> str:
        return f"b{self.batch}" if self.seq == 0 else f"b{self.batch}xs{self.seq}"


@dataclass(frozen=True)
class RawPayload:
    """Bytes with their media type: the input and output of a user handler."""

    body: bytes
    content_type: str
    accept: str = "application/json"


@dataclass(frozen=True)
class Item:
    """One prepared request, ready to be batched with others of the same ``key``."""

    key: Hashable
    size: int
    payload: Any
    bucket: Bucket | None = None
    runs_at: Bucket | None = None  # the rows × positions one run of it alone computes (None: bucket)

    @property
    def seq(self) -> int:
        """Its sequence length when the key is one (a text item's token bucket), else 0."""
        return self.key if isinstance(self.key, int) else 0


@dataclass(frozen=True)
class SyntheticRequest:
    """A request body the warmup runner sends through the real path to exercise one bucket."""

    name: str
    body: bytes
    content_type: str
    accept: str = "application/json"


@dataclass
class ModelStats:
    """Counters a backend keeps; the server exports them as Prometheus metrics."""

    eager_runs: int = 0
    out_of_bucket: int = 0
    graphs_captured: int = 0
    graphs_replayed: int = 0
    graphs_missed: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    """What the server needs of a backend. See the module docstring for the request path."""

    name: str
    kind: ModelKind
    stats: ModelStats

    def load(self) -> None:
        """Heavy work: read weights, build sessions. Runs off the event loop, once."""

    @property
    def inputs(self) -> Sequence[TensorSpec]: ...

    @property
    def outputs(self) -> Sequence[TensorSpec]: ...

    @property
    def max_batch(self) -> int:
        """Most rows one ``infer`` call takes; valid after ``load()``."""

    @property
    def fixed_batch(self) -> bool:
        """True when the batch axis is fixed: ``infer`` takes one item per call; valid after ``load()``."""

    @property
    def instances(self) -> int:
        """How many ``infer`` calls may run at once, each on its own inference worker (1: one
        at a time); valid after ``load()``."""

    def buckets(self) -> Sequence[Bucket]:
        """Every padded shape ``infer`` can run with; warmup covers each one."""

    def prepare(self, payload: Any) -> Item:
        """Validate a decoded payload and choose its bucket. Raises ``BadRequest``/``PayloadTooLarge``."""

    def infer(self, items: Sequence[Item]) -> list[Any]:
        """Run one batch (items share one key) on the inference thread; one output per item."""

    def synthetic_request(self, bucket: Bucket) -> SyntheticRequest:
        """A body that, decoded and prepared, lands in ``bucket``."""

    def warmup_hook(self) -> None:
        """Model-specific warmup (e.g. a user's ``model_warmup_fn``) before the synthetic shapes."""

    def seal(self) -> None:
        """Warmup is over: close CUDA graph capture; later unseen shapes count as misses."""

    def metadata(self) -> Mapping[str, Any]:
        """Extra facts for ``GET /v2/models/{name}`` (dimension, backend, device, ...)."""
