"""Readiness after READY, in-process: a stalled call or a failing backend takes the replica out of
rotation (DEGRADED) and it comes back by itself; a dead batcher loop is FAILED. Also: a model with
a fixed batch axis serves concurrent requests correctly."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests import onnx_models
from tests.conftest import serving, serving_runtime, wait_until
from warmgate.config import Config
from warmgate.errors import ModelError
from warmgate.models.base import Item
from warmgate.models.onnx_backend import OnnxModel

X = [[1.0, 2.0, 3.0, 4.0]]
EXPECTED = (np.asarray(X, np.float32) @ onnx_models.WEIGHT + onnx_models.BIAS).tolist()


class Switchable(OnnxModel):
    """The linear ONNX model, whose inference the test can stall, break, or corrupt."""

    def __init__(self, path: Path, name: str, batch_sizes: Sequence[int]) -> None:
        super().__init__(path, name, batch_sizes)
        self.stall = threading.Event()
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.failing = False
        self.bad_items = False

    def prepare(self, payload: Any) -> Item:
        item = super().prepare(payload)
        if self.bad_items:  # a model bug the batcher's loop cannot survive
            return Item(item.key, "one", item.payload)  # type: ignore[arg-type]
        return item

    def infer(self, items: Sequence[Item]) -> list[Any]:
        if self.stall.is_set():
            self.stalled.set()
            self.release.wait(30)
        if self.failing:
            raise ModelError("CUDA error: device lost")
        return super().infer(items)


@pytest.fixture
def switchable(linear_dir: Path) -> tuple[list[Switchable], Any]:
    made: list[Switchable] = []

    def factory(config: Config, model_dir: Path) -> Switchable:
        model = Switchable(model_dir / "model.onnx", "linear", config.bucket_plan().batch_sizes)
        made.append(model)
        return model

    return made, factory


def phase(client: TestClient) -> str:
    return str(client.get("/readyz").json()["phase"])


def test_a_stalled_call_makes_ping_503_and_the_replica_returns_when_it_ends(
    linear_dir: Path, switchable: tuple[list[Switchable], Any]
) -> None:
    made, factory = switchable
    with (
        serving(linear_dir, factory, max_batch="2", watchdog_s="0.2") as client,
        ThreadPoolExecutor(2) as pool,
    ):
        model = made[0]
        assert client.get("/ping").status_code == 200
        model.stall.set()
        stuck = pool.submit(client.post, "/invocations", json={"inputs": X})
        assert model.stalled.wait(10)
        wait_until(lambda: client.get("/ping").status_code == 503, 10, "/ping 503 during the stall")
        body = client.get("/ping").json()
        assert body["phase"] == "degraded" and "WARMGATE_WATCHDOG_S" in body["reason"]
        assert client.get("/readyz").status_code == 503
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/models/linear/ready").status_code == 503
        assert client.get("/livez").status_code == 200  # recoverable: no restart
        assert client.get("/v2/health/live").status_code == 200
        refused = client.post("/invocations", json={"inputs": X})
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert 'warmgate_phase{phase="degraded"} 1.0' in client.get("/metrics").text
        model.stall.clear()
        model.release.set()
        done = stuck.result(10)
        assert done.status_code == 200 and np.allclose(done.json()["outputs"]["y"], EXPECTED)
        wait_until(lambda: client.get("/ping").status_code == 200, 10, "/ping 200 after the stall")
        assert phase(client) == "ready"
        assert client.post("/invocations", json={"inputs": X}).status_code == 200


def test_a_failing_backend_degrades_and_a_canary_brings_it_back(
    linear_dir: Path, switchable: tuple[list[Switchable], Any]
) -> None:
    made, factory = switchable
    with serving(linear_dir, factory, max_batch="2", degrade_after="2", canary_interval_s="0.05") as client:
        model = made[0]
        for _ in range(3):  # client errors never count against the replica
            assert (
                client.post(
                    "/invocations", content=b"{", headers={"Content-Type": "application/json"}
                ).status_code
                == 400
            )
        assert phase(client) == "ready"
        model.failing = True
        for _ in range(2):
            failed = client.post("/invocations", json={"inputs": X})
            assert failed.status_code == 500 and "device lost" in failed.json()["message"]
        wait_until(lambda: phase(client) == "degraded", 10, "DEGRADED after two failed batches")
        assert "device lost" in client.get("/ping").json()["reason"]
        assert client.post("/invocations", json={"inputs": X}).status_code == 503  # sent elsewhere
        assert client.get("/livez").status_code == 200
        model.failing = False
        wait_until(lambda: client.get("/ping").status_code == 200, 10, "READY after a canary succeeded")
        assert client.post("/invocations", json={"inputs": X}).status_code == 200


def test_a_dead_batcher_loop_is_failed_and_asks_to_exit(
    linear_dir: Path, switchable: tuple[list[Switchable], Any]
) -> None:
    made, factory = switchable
    with serving_runtime(linear_dir, factory, exit_on_failure="1", timeout_s="1") as (client, runtime):
        made[0].bad_items = True
        lost = client.post("/invocations", json={"inputs": X})
        wait_until(lambda: phase(client) == "failed", 10, "FAILED after the loop died")
        assert lost.status_code == 504  # queued when the loop died: never answered
        ping = client.get("/ping")
        assert ping.status_code == 503 and "batcher's loop ended" in ping.json()["reason"]
        assert client.get("/livez").status_code == 503
        assert runtime.exit_code == 1


@pytest.mark.parametrize("fixed", [1, 4])
def test_a_fixed_batch_model_serves_64_concurrent_same_shape_requests(tmp_path: Path, fixed: int) -> None:
    onnx_models.linear(tmp_path / "fixed" / "model.onnx", batch=fixed)
    rng = np.random.default_rng(fixed)
    inputs = [rng.standard_normal((fixed, 4)).astype(np.float32) for _ in range(64)]
    with serving(tmp_path / "fixed", max_batch="16", timeout_s="30") as client:
        assert client.get("/v2/models/fixed").json()["batchable"] is False

        def call(x: np.ndarray) -> Any:
            return client.post("/invocations", json={"inputs": x.tolist()})

        with ThreadPoolExecutor(64) as pool:
            responses = list(pool.map(call, inputs))
    assert [r.status_code for r in responses] == [200] * 64
    for x, r in zip(inputs, responses, strict=True):
        np.testing.assert_allclose(
            r.json()["outputs"]["y"], x @ onnx_models.WEIGHT + onnx_models.BIAS, rtol=1e-5
        )
