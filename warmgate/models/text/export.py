"""Export the torch encoder of a model directory to ``model.onnx``.

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (int64, ``(batch, seq)``,
both axes dynamic) and returns ``last_hidden_state`` ``(batch, seq, hidden)``; pooling stays in
:mod:`warmgate.models.text.pooling`, shared with the torch backend. The files are written to
temporary names and renamed, so a crash never leaves a half-written ``model.onnx``.

The weights go to ``model.onnx.data`` beside the graph (ONNX external data), which ONNX Runtime
memory-maps instead of copying onto its heap: the pages of tensors it only reads (the 47 MB word
embedding table, of which a run touches the rows of its tokens) stay file-backed and are read in
on demand. For MiniLM the session open peaks at 118 MB instead of 206 MB and holds 116 MB
instead of 175 MB (``scripts/bench_memory.py``); ``external_data=False`` writes one file.

Uses the TorchScript-based exporter (``dynamo=False``), which needs no ``onnxscript``.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

import torch

from warmgate.errors import ModelLoadError
from warmgate.models.text.bert_config import BertConfig
from warmgate.models.text.encoder import load_encoder
from warmgate.models.text.layout import TextModelFiles

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
DEFAULT_OPSET = 17


def export_onnx(
    model_dir: Path | str,
    out_path: Path | str | None = None,
    opset: int = DEFAULT_OPSET,
    quantize: str | None = None,
    external_data: bool = True,
) -> Path:
    """Write the ONNX graph of ``model_dir``'s encoder to ``out_path`` (default
    ``model_dir/model.onnx``), its weights to ``<out_path>.data`` (unless ``external_data`` is
    False), and return the graph's path. ``quantize="int8"`` writes the dynamically quantised
    copy there instead (one file, see :mod:`warmgate.models.quantize`)."""
    if quantize is not None:
        return _export_quantized(model_dir, out_path, opset, quantize)
    files = TextModelFiles(Path(model_dir))
    config = BertConfig.from_file(files.require(files.config, "config.json"))
    encoder = load_encoder(files.require(files.weights, "model.safetensors"), config, "cpu")
    target = Path(out_path) if out_path is not None else files.onnx
    target.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.ones((2, 8), dtype=torch.int64)
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    axes[OUTPUT_NAME] = {0: "batch", 1: "sequence"}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # "legacy TorchScript-based export": deliberate, it needs no onnxscript.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                encoder,
                args,
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        tmp.chmod(0o644)  # mkstemp makes it private
        if external_data:
            _externalize(tmp, target)
        else:
            target.with_name(data_file_name(target)).unlink(missing_ok=True)
            tmp.replace(target)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as exc:
        raise ModelLoadError(f"ONNX export of {files.root} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def data_file_name(graph: Path) -> str:
    """The name of the external-data file beside ``graph`` (``model.onnx`` → ``model.onnx.data``)."""
    return f"{graph.name}.data"


def _externalize(single: Path, target: Path) -> None:
    """Rewrite the one-file graph ``single`` as ``target`` plus its weights in
    ``target``'s data file; the data file is renamed into place first, the graph last."""
    import onnx

    model = onnx.load(str(single))
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        name = data_file_name(target)
        onnx.save_model(
            model,
            str(staged),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=name,
            size_threshold=1024,  # small constants (shapes, scalars) stay in the graph
        )
        del model
        for path in (staged, Path(tmp) / name):
            path.chmod(0o644)
        (Path(tmp) / name).replace(target.with_name(name))
        staged.replace(target)


def _export_quantized(model_dir: Path | str, out_path: Path | str | None, opset: int, scheme: str) -> Path:
    from warmgate.models.quantize import SCHEMES, quantize_int8

    if scheme not in SCHEMES:
        raise ModelLoadError(f"unknown quantisation {scheme!r}; choose one of {', '.join(SCHEMES)}")
    target = Path(out_path) if out_path is not None else TextModelFiles(Path(model_dir)).onnx
    with tempfile.TemporaryDirectory(prefix="warmgate-export-") as tmp:
        fp32 = export_onnx(model_dir, Path(tmp) / "model.onnx", opset, external_data=False)
        return quantize_int8(fp32, target, keep_float=float_matmuls(fp32))


def float_matmuls(path: Path) -> list[str]:
    """The MatMuls that stay fp32 in the int8 copy: every layer's feed-forward down-projection
    (``/layer.N/output/dense``: its input, after GELU, has the outlier activations that per-tensor
    uint8 quantisation handles worst) and the feed-forward up-projection
    (``/layer.N/intermediate/dense``) of every layer but the first and the last.

    On MiniLM (scripts/bench_int8.py, cosine to the fp32 embeddings of
    tests/fixtures/minilm-embeddings.json, worst / mean over the texts): all MatMuls int8 gave
    0.971 / 0.989, the down-projections fp32 0.977 / 0.992, and this set 0.993 / 0.997. The
    attention projections stay int8 in every layer; keeping them fp32 instead helped less
    (0.988 worst)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul"]
    layers = sorted({int(m.group(1)) for name in matmuls if (m := _LAYER.search(name))})
    inner = set(layers[1:-1])
    keep = []
    for name in matmuls:
        up = _FFN_UP.search(name)
        if _FFN_DOWN.search(name) or (up is not None and int(up.group(1)) in inner):
            keep.append(name)
    return keep


_LAYER = re.compile(r"/layer\.(\d+)/")
_FFN_DOWN = re.compile(r"/layer\.\d+/output/dense/MatMul$")
_FFN_UP = re.compile(r"/layer\.(\d+)/intermediate/dense/MatMul$")
