"""Model instances: an ONNX model on CPU with ``instances`` 2 runs two batches at once, on one
session, and every caller still gets its own answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import onnx_models
from tests.conftest import serving_runtime
from warmgate.config import Config
from warmgate.models.base import Item
from warmgate.models.onnx_backend import OnnxModel
from warmgate.models.ort_session import OrtSettings


class Meeting(OnnxModel):
    """The linear model, whose batches (once ``meet`` is set) each wait for another batch to be
    running at the same time: they finish only when two run at once."""

    def __init__(self, path: Path, config: Config) -> None:
        ort = OrtSettings(threads=config.ort_threads, instances=config.ort_instances)
        super().__init__(path, "linear", config.bucket_plan().batch_sizes, ort=ort)
        self.meet = False
        self.pair = threading.Barrier(2, timeout=2)

    def infer(self, items: Sequence[Item]) -> list[Any]:
        if self.meet:
            self.pair.wait()  # BrokenBarrierError (a 500) when no second batch runs meanwhile
        return super().infer(items)


@pytest.mark.parametrize("instances", [2, 1])
def test_two_instances_run_two_batches_at_once_and_answer_each_caller(
    linear_dir: Path, instances: int
) -> None:
    made: list[Meeting] = []

    def factory(config: Config, model_dir: Path) -> Meeting:
        made.append(Meeting(model_dir / "model.onnx", config))
        return made[-1]

    rows = [[float(n), 1.0, 2.0, 3.0] for n in range(2)]
    with serving_runtime(
        linear_dir, factory, instances=str(instances), threads="1", max_batch="2", batch_delay_ms="0"
    ) as (client, runtime):
        assert (made[0].instances, runtime.inference.workers) == (instances, instances)
        made[0].meet = True
        with ThreadPoolExecutor(2) as pool:  # one row each: two batches of one (2 rows ÷ 2 instances)
            replies = list(pool.map(lambda row: client.post("/invocations", json={"inputs": [row]}), rows))
    if instances == 1:  # one batch at a time: the first waits for a partner that never runs
        assert [r.status_code for r in replies].count(500) >= 1
        return
    assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
    for row, reply in zip(rows, replies, strict=True):
        expected = np.asarray([row], np.float32) @ onnx_models.WEIGHT + onnx_models.BIAS
        np.testing.assert_allclose(reply.json()["outputs"]["y"], expected, rtol=1e-6)


def test_a_model_that_runs_one_batch_at_a_time_gets_one_worker_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A SageMaker handler is not assumed thread-safe: ``instances`` 2 runs one, with a warning."""
    handler = Path(__file__).resolve().parents[1] / "fixtures" / "handler_model"
    with (
        caplog.at_level(logging.WARNING, logger="warmgate.runtime"),
        serving_runtime(handler, instances="2") as (client, runtime),
    ):
        assert runtime.model is not None
        assert (runtime.model.instances, runtime.inference.workers) == (1, 1)
        assert client.get("/ping").status_code == 200
    assert any("instances 2 asked, 1 run" in r.getMessage() for r in caplog.records)
