"""Benchmark weight loading and raw in-process encode throughput of the built-in text model.

* Weight load: safetensors memory-mapped (``safetensors.torch.load_file``, and warmgate's full
  ``load_encoder``: header validation + build) vs the same tensors through a pickle checkpoint
  (``torch.save`` then ``torch.load(weights_only=False)`` on a temporary copy; benchmark only,
  warmgate never unpickles weights). Medians of ``--repeat`` runs, page cache warm for both.
* Encode: embeddings/second of ``model.infer([model.prepare(texts)])`` in-process, torch and
  ONNX Runtime, per batch size (texts of ~``--tokens`` tokens).
* On CUDA only: batch-1 latency eager vs CUDA graph replay, and the time and memory that
  capturing every bucket costs.

Prints markdown tables (machine first). Usage::

    python scripts/bench_load.py [--model-dir DIR] [--batches 1,8,32] [--repeat 5] [--threads N]
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


def touch(tensors: dict[str, Any]) -> float:
    """Read every byte (a memory map is lazy: this forces the pages in)."""
    return sum(float(t.float().sum()) for t in tensors.values())


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
                "safetensors load_file + read every byte",
                median_seconds(lambda: touch(load_file(str(weights))), repeat),
            ),
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
    model_dir: Path, batches: list[int], tokens: int, repeat: int, threads: int
) -> list[tuple[str, int, float, float]]:
    from warmgate.models.text import OnnxTextModel, TorchTextModel, export_onnx

    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model_dir, Path(tmp) / "model.onnx")
        models = [
            TorchTextModel(model_dir, device="cpu", threads=threads),
            OnnxTextModel(model_dir, device="cpu", onnx_path=onnx_path, threads=threads),
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


def bench_cuda_graphs(model_dir: Path, repeat: int) -> list[tuple[str, float]]:
    """On CUDA: batch-1 latency eager vs graph replay, and what capturing every bucket costs."""
    import torch

    from warmgate.models.text import TorchTextModel

    eager = TorchTextModel(model_dir, device="cuda", cuda_graphs=False)
    graphs = TorchTextModel(model_dir, device="cuda")
    eager.load()
    graphs.load()
    text = [graphs.tokenizer.text_of_length(16)]
    torch.cuda.synchronize()
    reserved = torch.cuda.memory_reserved()
    start = time.perf_counter()
    for bucket in graphs.buckets():
        texts = [graphs.tokenizer.text_of_length(bucket.seq)] * bucket.batch
        graphs.infer([graphs.prepare(texts)])
    capture_s = time.perf_counter() - start
    graphs.seal()
    capture_mib = (torch.cuda.memory_reserved() - reserved) / 2**20
    return [
        ("eager batch 1 (ms)", 1000 * median_seconds(lambda: eager.infer([eager.prepare(text)]), repeat)),
        (
            "graph replay batch 1 (ms)",
            1000 * median_seconds(lambda: graphs.infer([graphs.prepare(text)]), repeat),
        ),
        (f"capture all {graphs.stats.graphs_captured} buckets (s)", capture_s),
        ("capture memory reserved (MiB)", capture_mib),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: fetch MiniLM")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per text (bucket seq)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: backend default)")
    parser.add_argument("--cuda-only", action="store_true", help="only the CUDA graphs table")
    args = parser.parse_args()

    # As load_text_model does for the server: torch's OpenMP threads sleep when idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    model_dir = args.model_dir or fetch_default_model(default_cache_dir(), print)
    batches = [int(b) for b in args.batches.split(",")]

    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, python {platform.python_version()}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, OMP_WAIT_POLICY {os.environ['OMP_WAIT_POLICY']}"
    )
    print(f"model: {model_dir.name}\n")  # its name, not a machine path

    if not args.cuda_only:
        load_rows = bench_load(model_dir, args.repeat)
        base = load_rows[0][1]
        print("| weight load | median ms | × safetensors mmap |")
        print("|---|---:|---:|")
        for name, seconds in load_rows:
            print(f"| {name} | {seconds * 1000:.1f} | {seconds / base:.2f} |")

        print(f"\nintra-op threads: {args.threads or 'backend default'}")
        print("\n| backend | batch | tokens/text | median ms/batch | embeddings/s |")
        print("|---|---:|---:|---:|---:|")
        rows = bench_encode(model_dir, batches, args.tokens, args.repeat, args.threads)
        for backend, batch, ms, per_s in rows:
            print(f"| {backend} | {batch} | {args.tokens} | {ms:.1f} | {per_s:.0f} |")

    if torch.cuda.is_available():
        print(f"\n| CUDA graphs on {torch.cuda.get_device_name()} | value |")
        print("|---|---:|")
        for name, value in bench_cuda_graphs(model_dir, max(args.repeat, 20)):
            print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
