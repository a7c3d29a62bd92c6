"""The denominators: the raw model in process, nothing of warmgate's serving path.

On CPU that is ONNX Runtime, ``session.run`` only (:class:`RawSession`); on a GPU, the torch
encoder the server loads, eager, its forward pass only, with the copies to and from the device
(:class:`RawTorch`: the server's CUDA graphs are its own, not the raw model's).

* best-batch throughput: one sentence repeated ``batch`` times, every batch size tried, the
  session on every core (spinning off, as the server runs it); also with the cores shared out
  between runs on two threads at once (``serve --instances 2``);
* one pass over the bucket plan: every bucket run once at steady speed (each is run until two
  runs agree first), the cost READY is compared with.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from warmgate.models.base import Bucket
from warmgate.models.ort_session import open_session
from warmgate.models.text.tokenizer import TextTokenizer, pad_batch

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class BatchRate:
    batch: int
    sequences_per_s: float


class Raw(Protocol):
    """A raw model: its tokenizer, an input built from padded ids, one synchronous run."""

    tokenizer: TextTokenizer
    threads: int  # CPU intra-op threads (0 on a GPU)

    def describe(self) -> str: ...

    def feed(self, ids: IntArray, mask: IntArray) -> Any: ...

    def run(self, feed: Any) -> None: ...


def timed(raw: Raw, feed: Any) -> float:
    t0 = time.perf_counter()
    raw.run(feed)
    return time.perf_counter() - t0


def open_raw(model_dir: Path, device: str, threads: int) -> Raw:
    """The raw model a replica on ``device`` is measured against: ONNX Runtime on ``threads``
    cores on the CPU, the torch encoder on a GPU."""
    if device == "cpu":
        return RawSession(model_dir, threads)
    return RawTorch(model_dir, device)


class RawSession:
    """The exported text encoder's session and tokenizer, nothing of warmgate's serving path."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        self.threads = threads or os.cpu_count() or 1
        self.session = open_session(model_dir / "model.onnx", "cpu", self.threads)
        self.tokenizer = TextTokenizer(model_dir / "tokenizer.json", 512)
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._output = self.session.get_outputs()[0].name

    def feed(self, ids: IntArray, mask: IntArray) -> dict[str, IntArray]:
        available = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return {name: available[name] for name in self._inputs}

    def describe(self) -> str:
        return f"ONNX Runtime, session.run only, {self.threads} intra-op threads"

    def run(self, feed: dict[str, IntArray]) -> None:
        self.session.run([self._output], feed)


class RawTorch:
    """The torch encoder of ``config.json`` + ``model.safetensors`` as the server loads it
    (float32), run eagerly: ids to the device, forward, token embeddings back (that copy
    synchronises)."""

    threads = 0

    def __init__(self, model_dir: Path, device: str) -> None:
        import torch

        from warmgate.models.text.bert_config import BertConfig
        from warmgate.models.text.encoder import load_encoder

        self._torch = torch
        self.device = torch.device(device)
        config = BertConfig.from_file(model_dir / "config.json")
        self.encoder = load_encoder(model_dir / "model.safetensors", config, self.device)
        self.tokenizer = TextTokenizer(model_dir / "tokenizer.json", 512)

    def describe(self) -> str:
        where = self._torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "CPU"
        return f"torch {self._torch.__version__} eager on {where}, encoder forward only"

    def feed(self, ids: IntArray, mask: IntArray) -> tuple[Any, Any]:
        return self._torch.from_numpy(ids), self._torch.from_numpy(mask)

    def run(self, feed: tuple[Any, Any]) -> None:
        ids, mask = feed
        with self._torch.inference_mode():
            self.encoder(ids.to(self.device), mask.to(self.device)).cpu()


def sentence_feed(raw: Raw, sentence: str, batch: int = 1) -> Any:
    """``raw``'s input of ``sentence`` repeated ``batch`` times, padded to its own length."""
    (row,) = raw.tokenizer.encode([sentence])
    return raw.feed(*pad_batch([row] * batch, batch, len(row), raw.tokenizer.pad_id))


def best_batch(
    raw: Raw, sentence: str, batches: Sequence[int], seconds: float, at_once: int = 1
) -> list[BatchRate]:
    """Sequences/s of ``session.run`` at each batch size (``seconds`` each, after 3 warm runs),
    called by ``at_once`` threads at the same time (the layout ``serve --instances`` runs)."""
    rates = []
    for batch in batches:
        feed = sentence_feed(raw, sentence, batch)
        for _ in range(3):
            raw.run(feed)
        rates.append(BatchRate(batch, _drive(raw, feed, batch, seconds, at_once)))
    return rates


def _drive(raw: Raw, feed: Any, batch: int, seconds: float, at_once: int) -> float:
    """Sequences/s of ``at_once`` threads running ``feed`` back to back for ``seconds``."""
    counts = [0] * at_once
    t0 = time.perf_counter()

    def lane(index: int) -> None:
        while time.perf_counter() - t0 < seconds:
            raw.run(feed)
            counts[index] += batch

    threads = [threading.Thread(target=lane, args=(index,)) for index in range(at_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - t0)


def steady_pass(raw: Raw, buckets: Sequence[Bucket], max_runs: int = 4) -> dict[Bucket, float]:
    """Each bucket's steady latency: runs until two consecutive agree within 5 % (the faster
    counts), or the fastest of ``max_runs``. Their sum is one pass over the plan."""
    out: dict[Bucket, float] = {}
    filler = raw.tokenizer.encode(["hello " * 600])[0]
    for bucket in buckets:
        rows = [filler[: bucket.seq]] * bucket.batch
        ids, mask = pad_batch(rows, bucket.batch, bucket.seq, raw.tokenizer.pad_id)
        feed = raw.feed(ids, mask)
        runs = [timed(raw, feed)]
        while len(runs) < max_runs:
            runs.append(timed(raw, feed))
            a, b = runs[-2:]
            if abs(a - b) <= 0.05 * min(a, b):
                break
        out[bucket] = min(runs[1:])
    return out
