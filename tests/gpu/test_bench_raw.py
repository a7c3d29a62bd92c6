"""`warmgate bench --device cuda`'s denominator: the torch encoder on the GPU, eager.

Marked ``gpu``; see ``tests/gpu/cuda.py`` for when it skips and when it fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gpu.cuda import require_cuda_torch

torch = require_cuda_torch()

pytestmark = [pytest.mark.gpu]

from tests.unit.models.bert_dirs import write_bert_dir  # noqa: E402
from warmgate.bench.raw import best_batch, open_raw  # noqa: E402


def test_open_raw_on_cuda_measures_the_encoder_on_the_gpu(tmp_path: Path) -> None:
    raw = open_raw(write_bert_dir(tmp_path / "bert", None), "cuda", 0)
    assert next(raw.encoder.parameters()).device.type == "cuda"  # type: ignore[attr-defined]
    assert torch.cuda.get_device_name() in raw.describe()
    rates = best_batch(raw, "recommend a manga", [1, 8], seconds=0.05)
    assert all(r.sequences_per_s > 0 for r in rates)
