"""The text-embedding model: everything the backends share.

:class:`TextEmbeddingModel` implements the :class:`~warmgate.models.base.Model` contract for
``ModelKind.TEXT`` once: validation, tokenisation and bucket choice in :meth:`prepare`; padding
(to the bucket when the backend needs it, else to the batch's longest text), pooling,
normalisation and splitting in :meth:`infer`; synthetic warmup bodies; metadata. A backend
(torch, ONNX Runtime) only loads its weights and turns padded ``(input_ids, attention_mask)``
into token embeddings.

The constructor reads the small JSON configs (so the bucket plan is known at once); :meth:`load`
does the heavy work: tokenizer, weights, sessions.
"""

from __future__ import annotations

import abc
import enum
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from warmgate.config import Device, Oversize
from warmgate.errors import BadRequest, ConfigError, ModelError, PayloadTooLarge
from warmgate.models.base import (
    Bucket,
    Item,
    ModelKind,
    ModelStats,
    SyntheticRequest,
    TensorSpec,
)
from warmgate.models.buckets import DEFAULT_SEQ_LENS, BucketPlan
from warmgate.models.memory import rss_bytes
from warmgate.models.text.layout import TextModelFiles, read_json_object
from warmgate.models.text.pooling import FloatArray, IntArray, PoolingConfig, pool
from warmgate.models.text.tokenizer import TextTokenizer, pad_batch

DEFAULT_MAX_BATCH = 32

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizedTexts:
    """An :class:`Item` payload: the token ids of each text, unpadded."""

    rows: tuple[IntArray, ...]

    @property
    def longest(self) -> int:
        return max(len(r) for r in self.rows)


def default_plan(max_seq_length: int, max_batch: int = DEFAULT_MAX_BATCH) -> BucketPlan:
    """Batch 1, 2, 4, ... ``max_batch`` × sequence 16, 32, ... capped at ``max_seq_length``
    (which is always the last sequence bucket, so every truncated text fits)."""
    seqs = [s for s in DEFAULT_SEQ_LENS if s < max_seq_length] + [max_seq_length]
    return BucketPlan.default(max_batch, seqs)


class TextEmbeddingModel(abc.ABC):
    """Texts in, one L2-normalised (per the pooling config) float32 vector per text out: ``infer``
    returns one ``(texts, dimension)`` array per item."""

    kind: ModelKind = ModelKind.TEXT
    backend: ClassVar[str]

    def __init__(
        self,
        model_dir: Path | str,
        *,
        plan: BucketPlan | None = None,
        oversize: Oversize | str = Oversize.REJECT,
        device: Device | str = Device.AUTO,
        name: str | None = None,
        threads: int = 0,
    ) -> None:
        self.files = TextModelFiles(Path(model_dir))
        self.name = name or self.files.root.resolve().name
        self.stats = ModelStats()
        self.oversize = _choice(Oversize, oversize, "oversize policy")
        self.requested_device = _choice(Device, device, "device").value
        if threads < 0:
            raise ConfigError(f"threads must be >= 0 (0: the backend's default), got {threads}")
        self.threads = threads
        # Only two facts of config.json matter here, so any architecture's file will do.
        raw = read_json_object(self.files.config) if self.files.config.is_file() else {}
        self.pooling = PoolingConfig.from_dir(self.files, _int_or_none(raw, "max_position_embeddings"))
        self.plan = _fit_plan(plan, self.pooling.max_seq_length)
        self.dimension: int | None = _int_or_none(raw, "hidden_size")
        self._tokenizer: TextTokenizer | None = None

    # -- backend hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def _load_backend(self) -> int:
        """Read weights / start sessions; return the embedding dimension."""

    @abc.abstractmethod
    def _token_embeddings(
        self, input_ids: IntArray, attention_mask: IntArray, bucket: Bucket | None
    ) -> FloatArray:
        """``(rows, seq)`` padded ids and mask → ``(rows, seq, hidden)`` token embeddings.
        ``bucket`` is None for an out-of-bucket (eager) shape."""

    def _pads_to_bucket(self) -> bool:
        """Whether a batch runs padded to its bucket's shape (rows and sequence), as a captured
        CUDA graph needs; otherwise it runs at its own rows × longest text, so no position is
        computed for padding alone (on CPU the cost grows with every padded position)."""
        return True

    def _rows_per_run(self, seq: int) -> int | None:
        """The most rows of ``seq`` tokens one backend call takes (None: a whole batch); larger
        batches run in chunks of rows, so the working memory of the biggest bucket stays bounded."""
        return None

    @abc.abstractmethod
    def _backend_metadata(self) -> dict[str, Any]:
        """``device`` and ``providers`` (and anything else the backend wants to show)."""

    # -- the Model contract ----------------------------------------------------------------

    def load(self) -> None:
        before = rss_bytes()
        tokenizer_path = self.files.require(self.files.tokenizer, "tokenizer")
        self._tokenizer = TextTokenizer(tokenizer_path, self.pooling.max_seq_length)
        self.dimension = self._load_backend()
        self.stats.extra["memory_bytes"] = float(max(0, rss_bytes() - before))

    @property
    def tokenizer(self) -> TextTokenizer:
        if self._tokenizer is None:
            raise RuntimeError(f"model {self.name!r} is used before load()")
        return self._tokenizer

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return (TensorSpec("inputs", "BYTES", (None,)),)

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return (TensorSpec("embeddings", "float32", (None, self.dimension)),)

    @property
    def max_batch(self) -> int:
        return self.plan.max_batch

    @property
    def fixed_batch(self) -> bool:
        return False

    def buckets(self) -> Sequence[Bucket]:
        return self.plan.buckets()

    def prepare(self, payload: Any) -> Item:
        texts = _validate_texts(payload)
        if len(texts) > self.plan.max_batch and self.oversize is Oversize.REJECT:
            raise PayloadTooLarge(
                f"{len(texts)} texts exceed the maximum batch of {self.plan.max_batch}; split the request"
            )
        tokenized = TokenizedTexts(tuple(self.tokenizer.encode(texts)))
        key = self.plan.seq_for(tokenized.longest)
        if key is None:
            if self.oversize is Oversize.REJECT:
                raise PayloadTooLarge(
                    f"a text of {tokenized.longest} tokens exceeds the largest sequence bucket "
                    f"({self.plan.max_seq}); shorten it"
                )
            key = tokenized.longest
        bucket = self.plan.select(len(texts), key)
        alone = self._run_shape(len(texts), key, tokenized.longest, bucket)
        return Item(key=key, size=len(texts), payload=tokenized, bucket=bucket, runs_at=alone)

    def infer(self, items: Sequence[Item]) -> list[Any]:
        if not items:
            return []
        if len({item.key for item in items}) != 1:
            raise ModelError(f"one batch must share one bucket, got keys {[i.key for i in items]}")
        rows = [row for item in items for row in _payload(item).rows]
        key = items[0].key
        if not isinstance(key, int):
            raise ModelError(f"a text item's key is its sequence bucket, got {key!r}")
        bucket = self.plan.select(len(rows), key)
        if bucket is None:
            self.stats.out_of_bucket += 1
        shape = self._run_shape(len(rows), key, max(len(r) for r in rows), bucket)
        ids, mask = pad_batch(rows, shape.batch, shape.seq, self.tokenizer.pad_id)
        step = self._rows_per_run(shape.seq) or shape.batch
        if step >= shape.batch:
            tokens = self._token_embeddings(ids, mask, bucket)
            pooled = pool(tokens[: len(rows)], mask[: len(rows)], self.pooling)
        else:  # chunks of rows, each pooled at once: memory is bounded by one chunk's
            parts = []
            for at in range(0, len(rows), step):  # chunks of padding rows alone are skipped
                chunk = slice(at, at + step)
                tokens = self._token_embeddings(ids[chunk], mask[chunk], None)
                real = min(step, len(rows) - at)
                parts.append(pool(tokens[:real], mask[chunk][:real], self.pooling))
            pooled = np.concatenate(parts)
        outputs: list[Any] = []
        start = 0
        for item in items:
            outputs.append(pooled[start : start + item.size])
            start += item.size
        return outputs

    def _run_shape(self, rows: int, key: int, longest: int, bucket: Bucket | None) -> Bucket:
        """The padded shape a batch of ``rows`` texts runs at."""
        if not self._pads_to_bucket():
            return Bucket(rows, longest)
        return bucket if bucket is not None else Bucket(rows, max(key, longest))

    def synthetic_request(self, bucket: Bucket) -> SyntheticRequest:
        text = self.tokenizer.text_of_length(bucket.seq)
        body = json.dumps({"inputs": [text] * bucket.batch}).encode()
        return SyntheticRequest(
            name=f"synthetic-{bucket.label()}", body=body, content_type="application/json"
        )

    @property
    def instances(self) -> int:
        """One ``infer`` at a time unless the backend says more."""
        return 1

    def warmup_hook(self) -> None:  # noqa: B027 - a hook with a sensible no-op default
        """Nothing beyond the synthetic shapes the warmup runner sends."""

    def seal(self) -> None:  # noqa: B027 - a hook with a sensible no-op default
        """Nothing to close by default; the torch backend closes CUDA graph capture."""

    def metadata(self) -> Mapping[str, Any]:
        return {
            "backend": self.backend,
            "dimension": self.dimension,
            "max_seq_length": self.pooling.max_seq_length,
            "pooling": self.pooling.describe(),
            "max_batch": self.plan.max_batch,
            "oversize": self.oversize.value,
            **self._backend_metadata(),
        }


_E = TypeVar("_E", bound=enum.Enum)


def _choice(kind: type[_E], value: enum.Enum | str, what: str) -> _E:
    """``value`` as a member of ``kind``; any enum with the same string values is accepted."""
    raw = value.value if isinstance(value, enum.Enum) else value
    try:
        return kind(raw)
    except ValueError as exc:
        choices = ", ".join(str(m.value) for m in kind)
        raise ConfigError(f"{what} must be one of {choices}, got {raw!r}") from exc


def _fit_plan(plan: BucketPlan | None, max_seq_length: int) -> BucketPlan:
    """The default plan, or ``plan`` with sequence buckets past ``max_seq_length`` folded into
    one bucket of ``max_seq_length`` (texts are truncated there, longer buckets never fill)."""
    if plan is None:
        return default_plan(max_seq_length)
    if not plan.seq_lens:
        raise ConfigError("a text model's bucket plan needs sequence lengths")
    if plan.max_seq <= max_seq_length:
        return plan
    seqs = (*(s for s in plan.seq_lens if s < max_seq_length), max_seq_length)
    log.info(
        "sequence buckets %s capped at the model's max_seq_length %d: %s",
        plan.seq_lens,
        max_seq_length,
        seqs,
    )
    return BucketPlan(plan.batch_sizes, seqs)


def _int_or_none(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _validate_texts(payload: Any) -> list[str]:
    if isinstance(payload, str):
        return [payload]
    if not isinstance(payload, (list, tuple)):
        raise BadRequest(f"inputs must be a string or a list of strings, got {type(payload).__name__}")
    if not payload:
        raise BadRequest("inputs must be a string or a non-empty list of strings; send at least one")
    for i, text in enumerate(payload):
        if not isinstance(text, str):
            raise BadRequest(f"inputs[{i}] must be a string, got {type(text).__name__}")
    return list(payload)


def _payload(item: Item) -> TokenizedTexts:
    if not isinstance(item.payload, TokenizedTexts):
        raise ModelError(f"item payload is {type(item.payload).__name__}, not tokenized texts")
    return item.payload
