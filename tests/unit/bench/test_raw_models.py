"""The benchmark's raw denominators: the torch encoder measured raw runs the weights the replica
serves, and the same measuring loops drive it and ONNX Runtime. On a GPU: ``tests/gpu``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.unit.models.bert_dirs import write_bert_dir  # noqa: E402
from warmgate.bench.raw import RawTorch, best_batch, steady_pass  # noqa: E402
from warmgate.models.base import Bucket  # noqa: E402
from warmgate.models.text.tokenizer import pad_batch  # noqa: E402
from warmgate.models.text.torch_backend import TorchTextModel  # noqa: E402

SENTENCE = "recommend a dark fantasy manga"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_dir(tmp_path_factory.mktemp("raw-bert"), None)


def test_raw_torch_runs_the_served_weights(bert_dir: Path) -> None:
    raw = RawTorch(bert_dir, "cpu")
    served = TorchTextModel(bert_dir, device="cpu")
    served.load()
    (row,) = raw.tokenizer.encode([SENTENCE])
    ids, mask = pad_batch([row], 1, len(row), raw.tokenizer.pad_id)
    with torch.inference_mode():
        tokens = raw.encoder(*raw.feed(ids, mask)).numpy()
    (expected,) = served.infer([served.prepare([SENTENCE])])
    mean = (tokens * mask[..., None]).sum(axis=1) / mask.sum()
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(mean, expected, atol=1e-5)


def test_the_measuring_loops_drive_raw_torch(bert_dir: Path) -> None:
    raw = RawTorch(bert_dir, "cpu")
    rates = best_batch(raw, SENTENCE, [1, 4], seconds=0.05)
    assert [r.batch for r in rates] == [1, 4]
    assert all(r.sequences_per_s > 0 for r in rates)
    buckets = [Bucket(1, 16), Bucket(2, 32)]
    passed = steady_pass(raw, buckets)
    assert list(passed) == buckets
    assert all(seconds > 0 for seconds in passed.values())
    assert "eager on CPU" in raw.describe()
