"""CUDA graphs: one per bucket during warmup, replayed afterwards, capture closed by seal().

Marked ``gpu`` and skipped without CUDA; an error (not a skip) where a CUDA device is visible but
torch cannot use it (see ``tests/gpu/cuda.py``). Uses a tiny random BERT with an offline-built
tokenizer, so it needs no network (the GPU machine reaches no registry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.gpu.cuda import require_cuda_torch

torch = require_cuda_torch()

pytestmark = [pytest.mark.gpu]

from tests.unit.models.bert_dirs import TINY_CONFIG, write_bert_dir  # noqa: E402
from warmgate.models.base import Bucket, ModelStats  # noqa: E402
from warmgate.models.buckets import BucketPlan  # noqa: E402
from warmgate.models.cuda_graphs import CudaGraphPool  # noqa: E402
from warmgate.models.text import TorchTextModel  # noqa: E402

PLAN = BucketPlan((1, 2, 4), (16, 32))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = {**TINY_CONFIG, "vocab_size": 16}
    return write_bert_dir(tmp_path_factory.mktemp("gpu-bert"), None, config=config)


def loaded(model_dir: Path, **options: object) -> TorchTextModel:
    model = TorchTextModel(model_dir, device="cuda", plan=PLAN, **options)  # type: ignore[arg-type]
    model.load()
    return model


def texts_for(model: TorchTextModel, bucket: Bucket) -> list[str]:
    texts: list[str] = json.loads(model.synthetic_request(bucket).body)["inputs"]
    return texts


def run(model: TorchTextModel, texts: list[str]) -> np.ndarray:
    (out,) = model.infer([model.prepare(texts)])
    result: np.ndarray = out
    return result


def test_warmup_captures_one_graph_per_bucket(bert_dir: Path) -> None:
    model = loaded(bert_dir)
    assert model.metadata()["cuda_graphs"] is True
    for bucket in model.buckets():
        run(model, texts_for(model, bucket))
        run(model, texts_for(model, bucket))  # a second warmup round replays, no new capture
    assert model.stats.graphs_captured == len(PLAN.buckets())
    assert model.stats.graphs_replayed == 2 * len(PLAN.buckets())
    assert model.stats.graphs_missed == 0


def test_replay_equals_eager(bert_dir: Path) -> None:
    graphs, eager = loaded(bert_dir), loaded(bert_dir, cuda_graphs=False)
    cpu = TorchTextModel(bert_dir, device="cpu", plan=PLAN)
    cpu.load()
    batches = [["recommend a manga"], ["one piece", "hello the word " * 4, "x"]]
    for texts in batches:
        first = run(graphs, texts)  # captures, then replays
        again = run(graphs, texts)  # pure replay
        reference = run(eager, texts)
        np.testing.assert_allclose(first, reference, atol=1e-5)
        np.testing.assert_allclose(again, reference, atol=1e-5)
        np.testing.assert_allclose(reference, run(cpu, texts), atol=1e-4)
    # Different content through the same captured bucket: the static inputs are refreshed.
    np.testing.assert_allclose(run(graphs, ["hello"]), run(eager, ["hello"]), atol=1e-5)
    assert eager.stats.graphs_captured == 0


def test_after_seal_a_captured_shape_replays_and_an_unseen_one_misses(bert_dir: Path) -> None:
    model = loaded(bert_dir)
    warm = [b for b in model.buckets() if b.seq == 16]
    for bucket in warm:
        run(model, texts_for(model, bucket))
    model.seal()
    captured, replayed = model.stats.graphs_captured, model.stats.graphs_replayed

    run(model, texts_for(model, warm[0]))
    assert model.stats.graphs_captured == captured
    assert model.stats.graphs_replayed == replayed + 1

    run(model, texts_for(model, Bucket(1, 32)))  # never warmed: eager, counted
    assert model.stats.graphs_captured == captured
    assert model.stats.graphs_missed == 1


def _reserved_growth(capture: Any) -> int:
    """Bytes the CUDA caching allocator reserves while ``capture()`` runs."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = int(torch.cuda.memory_reserved())
    capture()
    torch.cuda.synchronize()
    return int(torch.cuda.memory_reserved()) - before


def test_graphs_share_one_memory_pool() -> None:
    """Four captured graphs on one pool reserve far less than four graphs on four pools: their
    large intermediates (64x the input) reuse the same blocks."""
    device = torch.device("cuda")

    def fn(x: Any) -> Any:
        return x.repeat(1, 64).exp().sum(dim=1, keepdim=True)

    buckets = [Bucket(1, n) for n in range(1, 5)]
    x = torch.ones(1, 1 << 16)  # 256 KiB in, 16 MiB intermediates

    def shared() -> None:
        pool = CudaGraphPool(fn, ModelStats(), device)
        keep.append(pool)
        for bucket in buckets:
            pool.run(bucket, [x])

    def separate() -> None:
        for bucket in buckets:
            pool = CudaGraphPool(fn, ModelStats(), device)
            keep.append(pool)
            pool.run(bucket, [x])

    keep: list[CudaGraphPool] = []  # graphs stay alive while memory is measured
    one_pool = _reserved_growth(shared)
    four_pools = _reserved_growth(separate)
    assert four_pools > 0
    assert one_pool < four_pools / 2, (one_pool, four_pools)


def test_pool_keeps_outputs_apart() -> None:
    stats = ModelStats()
    device = torch.device("cuda")
    pool = CudaGraphPool(lambda x: x * 2 + 1, stats, device)
    a = pool.run(Bucket(1, 4), [torch.ones(1, 4)]).clone()
    b = pool.run(Bucket(2, 4), [torch.full((2, 4), 3.0)]).clone()
    c = pool.run(Bucket(1, 4), [torch.full((1, 4), 5.0)]).clone()
    assert a.tolist() == [[3.0] * 4]
    assert b.tolist() == [[7.0] * 4] * 2
    assert c.tolist() == [[11.0] * 4]
    assert (stats.graphs_captured, stats.graphs_replayed) == (2, 3)
    assert pool.captured() == [Bucket(1, 4), Bucket(2, 4)]
