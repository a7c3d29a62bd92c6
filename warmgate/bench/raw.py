"""The denominators: raw in-process ONNX Runtime, ``session.run`` only.

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
from typing import Any

import numpy as np

from warmgate.models.base import Bucket
from warmgate.models.ort_session import open_session
from warmgate.models.text.tokenizer import TextTokenizer, pad_batch

IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class BatchRate:
    batch: int
    sequences_per_s: float


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

    def run(self, feed: dict[str, IntArray]) -> None:
        self.session.run([self._output], feed)

    def timed(self, feed: dict[str, IntArray]) -> float:
        t0 = time.perf_counter()
        self.run(feed)
        return time.perf_counter() - t0


def best_batch(
    raw: RawSession, sentence: str, batches: Sequence[int], seconds: float, at_once: int = 1
) -> list[BatchRate]:
    """Sequences/s of ``session.run`` at each batch size (``seconds`` each, after 3 warm runs),
    called by ``at_once`` threads at the same time (the layout ``serve --instances`` runs)."""
    (row,) = raw.tokenizer.encode([sentence])
    rates = []
    for batch in batches:
        ids, mask = pad_batch([row] * batch, batch, len(row), raw.tokenizer.pad_id)
        feed = raw.feed(ids, mask)
        for _ in range(3):
            raw.run(feed)
        rates.append(BatchRate(batch, _drive(raw, feed, batch, seconds, at_once)))
    return rates


def _drive(raw: RawSession, feed: dict[str, IntArray], batch: int, seconds: float, at_once: int) -> float:
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


def steady_pass(raw: RawSession, buckets: Sequence[Bucket], max_runs: int = 4) -> dict[Bucket, float]:
    """Each bucket's steady latency: runs until two consecutive agree within 5 % (the faster
    counts), or the fastest of ``max_runs``. Their sum is one pass over the plan."""
    out: dict[Bucket, float] = {}
    filler = raw.tokenizer.encode(["hello " * 600])[0]
    for bucket in buckets:
        rows = [filler[: bucket.seq]] * bucket.batch
        ids, mask = pad_batch(rows, bucket.batch, bucket.seq, raw.tokenizer.pad_id)
        feed = raw.feed(ids, mask)
        runs = [raw.timed(feed)]
        while len(runs) < max_runs:
            runs.append(raw.timed(feed))
            a, b = runs[-2:]
            if abs(a - b) <= 0.05 * min(a, b):
                break
        out[bucket] = min(runs[1:])
    return out
