"""int8 against fp32 for the default model: file size, load time, throughput, cosine.

    python scripts/bench_int8.py [--seconds 3] [--rounds 5]

Exports all-MiniLM-L6-v2 twice under ``$WARMGATE_BENCH_DIR`` (default ``./out/bench``,
git-ignored), as ``warmgate export-onnx`` and ``warmgate export-onnx --quantize int8`` do. Load
time is ``OnnxTextModel.load()`` in a fresh process (median of ``--rounds``, graph cache off).
Throughput is raw in-process encode of one 17-token sentence per row with all cores, at batch 32
and batch 1, the two models alternating for ``--rounds`` rounds of ``--seconds`` each (medians).
Cosine is per text against tests/fixtures/minilm-embeddings.json (sentence-transformers, fp32).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import SENTENCE, machine, onnx_dir

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm-embeddings.json"

_LOAD = r"""
import json, sys, time
from warmgate.models.ort_session import OrtSettings
from warmgate.models.text.onnx_backend import OnnxTextModel
import onnxruntime, tokenizers  # imports are not the model's load time
model = OnnxTextModel(sys.argv[1], device="cpu", ort=OrtSettings())
t0 = time.perf_counter()
model.load()
print(json.dumps({"load_s": time.perf_counter() - t0}))
"""


def int8_dir(fp32: Path) -> Path:
    out = fp32.parent / "minilm-int8"
    if (out / "model.onnx").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for item in fp32.iterdir():
        if item.name not in ("model.onnx", "model.onnx.data"):
            (shutil.copytree if item.is_dir() else shutil.copy)(item, out / item.name, **_exist_ok(item))
    from warmgate.models.fetch import default_cache_dir, fetch_default_model
    from warmgate.models.text import export_onnx

    export_onnx(fetch_default_model(default_cache_dir()), out / "model.onnx", quantize="int8")
    return out


def _exist_ok(item: Path) -> dict[str, bool]:
    return {"dirs_exist_ok": True} if item.is_dir() else {}


def load_seconds(model_dir: Path, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        out = subprocess.run(
            [sys.executable, "-c", _LOAD, str(model_dir)], capture_output=True, text=True, check=True
        )
        times.append(json.loads(out.stdout.strip().splitlines()[-1])["load_s"])
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from warmgate.models.ort_session import OrtSettings
    from warmgate.models.text.onnx_backend import OnnxTextModel

    dirs = {"fp32": onnx_dir()}
    dirs["int8"] = int8_dir(dirs["fp32"])
    models = {}
    for name, d in dirs.items():
        models[name] = OnnxTextModel(d, device="cpu", ort=OrtSettings())
        models[name].load()

    items = json.loads(FIXTURE.read_text())["items"]
    texts = [i["text"] for i in items]
    ref = np.asarray([i["embedding"] for i in items], np.float32)
    cos = {}
    for name, model in models.items():
        chunks = [model.infer([model.prepare(texts[i : i + 8])])[0] for i in range(0, len(texts), 8)]
        out = np.concatenate(chunks)
        cos[name] = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)

    rates: dict[tuple[str, int], list[float]] = {(n, b): [] for n in models for b in (32, 1)}
    for _ in range(args.rounds):
        for name, model in models.items():
            for batch in (32, 1):
                item = model.prepare([SENTENCE] * batch)
                model.infer([item])
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    model.infer([item])
                    n += batch
                rates[name, batch].append(n / (time.perf_counter() - t0))
    rate = {k: statistics.median(v) for k, v in rates.items()}
    load = {name: load_seconds(d, args.rounds) for name, d in dirs.items()}
    # the graph and its weights (the fp32 export keeps them in model.onnx.data)
    files = ("model.onnx", "model.onnx.data")
    size = {name: sum((d / f).stat().st_size for f in files if (d / f).is_file()) for name, d in dirs.items()}

    print(f"Machine: {machine()}; {os.cpu_count()} intra-op threads.\n")
    print("| | fp32 | int8 | int8 ÷ fp32 |")
    print("| --- | --- | --- | --- |")
    mb = {k: v / 1e6 for k, v in size.items()}
    ratio = mb["int8"] / mb["fp32"]
    print(f"| model.onnx (+ .data) | {mb['fp32']:.1f} MB | {mb['int8']:.1f} MB | {ratio:.2f} |")
    ratio = load["int8"] / load["fp32"]
    print(f"| load (median of {args.rounds}) | {load['fp32']:.2f} s | {load['int8']:.2f} s | {ratio:.2f} |")
    for batch in (32, 1):
        a, b = rate["fp32", batch], rate["int8", batch]
        print(f"| seq/s, batch {batch} (median of {args.rounds}) | {a:.0f} | {b:.0f} | {b / a:.2f} |")
    f, i = cos["fp32"], cos["int8"]
    print(f"| cosine to reference, min over {len(f)} texts | {f.min():.4f} | {i.min():.4f} | |")
    print(f"| cosine to reference, mean over {len(f)} texts | {f.mean():.4f} | {i.mean():.4f} | |")


if __name__ == "__main__":
    main()
