"""Which MatMuls to keep fp32 in the int8 copy: worst and mean cosine of each variant.

    python scripts/int8_variants.py [VARIANT ...]

Quantises the fp32 export of the default model (``$WARMGATE_BENCH_DIR/minilm-onnx``, as
scripts/bench_int8.py makes it) with ``onnxruntime.quantization.quantize_dynamic`` once per
variant, under a temporary directory, and prints each variant's cosine against
tests/fixtures/minilm-embeddings.json (worst and mean over the texts). Throughput of the chosen
set is scripts/bench_int8.py's job. The variants are the rows of the int8 table in
docs/benchmarks.md; ``chosen`` is what ``warmgate export-onnx --quantize int8`` writes.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import onnx_dir

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm-embeddings.json"


def variants(names: list[str]) -> dict[str, dict[str, Any]]:
    """name → ``nodes_to_exclude`` and other ``quantize_dynamic`` keywords."""

    def pick(pattern: str, layers: tuple[int, ...] = tuple(range(6))) -> list[str]:
        return [n for n in names if re.fullmatch(pattern, n) and int(n.split(".")[1].split("/")[0]) in layers]

    down = pick(r"/layer\.\d+/output/dense/MatMul")
    up = r"/layer\.\d+/intermediate/dense/MatMul"
    qkv = pick(r"/layer\.\d+/attention/self/(query|key|value)/MatMul")
    attn_out = pick(r"/layer\.\d+/attention/output/dense/MatMul")
    layer = r"/layer\.\d+/.*"
    return {
        "all-int8": {"nodes_to_exclude": []},
        "down-fp32": {"nodes_to_exclude": down},
        "matmul-const-b-only": {"nodes_to_exclude": down, "extra_options": {"MatMulConstBOnly": True}},
        "unsigned-weights": {"nodes_to_exclude": down, "unsigned": True},
        "reduce-range": {"nodes_to_exclude": down, "reduce_range": True},
        "attention-output-fp32": {"nodes_to_exclude": down + attn_out},
        "first-layer-fp32": {"nodes_to_exclude": down + pick(layer, (0,))},
        "last-layer-fp32": {"nodes_to_exclude": down + pick(layer, (5,))},
        "qkv-fp32": {"nodes_to_exclude": down + qkv},
        "attention-fp32": {"nodes_to_exclude": down + qkv + attn_out},
        **{f"up-{i}-fp32": {"nodes_to_exclude": down + pick(up, (i,))} for i in range(6)},
        "up-2-4-fp32": {"nodes_to_exclude": down + pick(up, (2, 3, 4))},
        "up-0-2-4-fp32": {"nodes_to_exclude": down + pick(up, (0, 2, 3, 4))},
        "chosen": {"nodes_to_exclude": down + pick(up, (1, 2, 3, 4))},
        "up-fp32": {"nodes_to_exclude": down + pick(up)},
    }


def main() -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from warmgate.models.ort_session import OrtSettings
    from warmgate.models.text.export import float_matmuls
    from warmgate.models.text.onnx_backend import OnnxTextModel

    fp32 = onnx_dir()
    graph = onnx.load(str(fp32 / "model.onnx"), load_external_data=False).graph
    table = variants([n.name for n in graph.node if n.op_type == "MatMul"])
    assert sorted(table["chosen"]["nodes_to_exclude"]) == sorted(float_matmuls(fp32 / "model.onnx"))
    items = json.loads(FIXTURE.read_text())["items"]
    texts = [i["text"] for i in items]
    ref = np.asarray([i["embedding"] for i in items], np.float32)
    print("| variant | worst | mean |\n| --- | ---: | ---: |")
    for name in sys.argv[1:] or list(table):
        opts = dict(table[name])
        unsigned = opts.pop("unsigned", False)
        with tempfile.TemporaryDirectory(prefix="int8-variant-") as tmp:
            out = Path(tmp)
            shutil.copytree(fp32, out, ignore=shutil.ignore_patterns("model.onnx"), dirs_exist_ok=True)
            weight = QuantType.QUInt8 if unsigned else QuantType.QInt8
            quantize_dynamic(
                fp32 / "model.onnx", out / "model.onnx", weight_type=weight, per_channel=True, **opts
            )
            model = OnnxTextModel(out, device="cpu", ort=OrtSettings())
            model.load()
            vecs = np.concatenate(
                [model.infer([model.prepare(texts[i : i + 8])])[0] for i in range(0, len(texts), 8)]
            )
        cos = (vecs * ref).sum(1) / np.linalg.norm(vecs, axis=1) / np.linalg.norm(ref, axis=1)
        print(f"| {name} | {cos.min():.4f} | {cos.mean():.4f} |", flush=True)


if __name__ == "__main__":
    main()
