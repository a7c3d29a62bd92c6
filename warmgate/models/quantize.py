"""int8 dynamic quantisation of an ONNX graph with ONNX Runtime's own tools.

Weights of MatMul/Gemm (and friends) become int8, per output channel; activations are quantised
to uint8 at run time from their observed range, so no calibration data is needed. The result is
an ordinary ``model.onnx``: warmup, buckets and serving treat it like any other.

``onnxruntime.quantization`` needs the ``onnx`` package (``pip install 'warmgate[quantize]'``);
both are imported inside the function.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from warmgate.errors import ModelLoadError

log = logging.getLogger("warmgate.models.quantize")

SCHEMES = ("int8",)


def quantize_int8(src: Path, dst: Path, keep_float: Sequence[str] = ()) -> Path:
    """Write the int8 dynamically quantised copy of ``src`` to ``dst`` (atomically) and return it.
    Nodes named in ``keep_float`` stay fp32."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ModelLoadError(
            f"int8 quantisation needs onnxruntime and onnx ({exc}); pip install 'warmgate[quantize]'"
        ) from exc
    if not src.is_file():
        raise ModelLoadError(f"{src} does not exist")
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        quantize_dynamic(
            src, tmp, weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=list(keep_float)
        )
        tmp.chmod(0o644)
        tmp.replace(dst)
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"int8 quantisation of {src} failed: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "int8 copy of %s: %.1f MB → %.1f MB", src.name, src.stat().st_size / 1e6, dst.stat().st_size / 1e6
    )
    return dst
