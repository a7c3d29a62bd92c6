"""Benchmark weight loading and raw in-process encode throughput of the built-in text model.

* Weight load: safetensors memory-mapped (``safetensors.torch.load_file``, and warmgate's full
  ``load_encoder``: header validation + build) vs the same tensors through a pickle checkpoint
  (``torch.save`` then ``torch.load(weights_only=False)`` on a temporary copy; benchmark only,
  warmgate never unpickles weights). Medians of ``--repeat`` runs, page cache warm for both.
* Encode: embeddings/second of ``model.infer([model.prepare(texts)])`` in-process, torch and
  ONNX Runtime, per batch size (texts of ~``--tokens`` tokens).

Prints markdown tables (machine first). Usage::

    python scripts/bench_load.py [--model-dir DIR] [--batches 1,8,32] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm the page cache and lazy imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_load(model_dir: Path, repeat: int) -> list[tuple[str, float]]:
    import torch
    from safetensors.torch import load_file

    from warmgate.models.text.bert_config import BertConfig
    from warmgate.models.text.encoder import load_encoder

    weights = model_dir / "model.safetensors"
    config = BertConfig.from_file(model_dir / "config.json")
    with tempfile.TemporaryDirectory() as tmp:
        pickled = Path(tmp) / "pytorch_model.bin"
        torch.save(load_file(str(weights)), pickled)
        rows = [
            ("safetensors load_file (mmap)", median_seconds(lambda: load_file(str(weights)), repeat)),
            (
                "pickle torch.load(weights_only=False)",
                median_seconds(lambda: torch.load(pickled, weights_only=False), repeat),
            ),
            (
                "warmgate load_encoder (validate + mmap + build)",
                median_seconds(lambda: load_encoder(weights, config), repeat),
            ),
        ]
    return rows


def bench_encode(
    model_dir: Path, batches: list[int], tokens: int, repeat: int
) -> list[tuple[str, int, float, float]]:
    from warmgate.models.text import OnnxTextModel, TorchTextModel, export_onnx

    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model_dir, Path(tmp) / "model.onnx")
        models = [
            TorchTextModel(model_dir, device="cpu"),
            OnnxTextModel(model_dir, device="cpu", onnx_path=onnx_path),
        ]
        for model in models:
            model.load()
            text = model.tokenizer.text_of_length(tokens)
            for batch in batches:
                texts = [text] * batch

                def encode(m: Any = model, t: list[str] = texts) -> None:
                    m.infer([m.prepare(t)])

                seconds = median_seconds(encode, repeat)
                rows.append((model.backend, batch, seconds * 1000, batch / seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: fetch MiniLM")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per text (bucket seq)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import torch

    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    model_dir = args.model_dir or fetch_default_model(default_cache_dir(), print)
    batches = [int(b) for b in args.batches.split(",")]

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"model: {model_dir}\n")

    load_rows = bench_load(model_dir, args.repeat)
    base = load_rows[0][1]
    print("| weight load | median ms | × safetensors mmap |")
    print("|---|---:|---:|")
    for name, seconds in load_rows:
        print(f"| {name} | {seconds * 1000:.1f} | {seconds / base:.2f} |")

    print("\n| backend | batch | tokens/text | median ms/batch | embeddings/s |")
    print("|---|---:|---:|---:|---:|")
    for backend, batch, ms, per_s in bench_encode(model_dir, batches, args.tokens, args.repeat):
        print(f"| {backend} | {batch} | {args.tokens} | {ms:.1f} | {per_s:.0f} |")


if __name__ == "__main__":
    main()
