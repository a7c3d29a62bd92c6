"""Shared fixtures: real ONNX models built per test, in-process apps with their lifespan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests import onnx_models
from warmgate.config import load_config
from warmgate.server.app import create_app
from warmgate.server.runtime import ModelFactory, default_model_factory

SETTLED = {"ready", "failed"}


def wait_settled(client: TestClient, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll /readyz until the replica is READY or FAILED; return the last body."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get("/readyz").json()
        if body["phase"] in SETTLED or time.monotonic() > deadline:
            return body
        time.sleep(0.02)


@contextmanager
def serving(
    model_dir: Path,
    factory: ModelFactory = default_model_factory,
    settle: bool = True,
    **options: Any,
) -> Iterator[TestClient]:
    """An in-process app (lifespan included) over ``model_dir`` with config ``options``."""
    config = load_config({"model_dir": str(model_dir), "fetch_default": "0", **options}, env={})
    with TestClient(create_app(config, factory), raise_server_exceptions=False) as client:
        if settle:
            wait_settled(client)
        yield client


@pytest.fixture
def linear_dir(tmp_path: Path) -> Path:
    onnx_models.linear(tmp_path / "linear" / "model.onnx")
    return tmp_path / "linear"


@pytest.fixture
def two_input_dir(tmp_path: Path) -> Path:
    onnx_models.two_inputs(tmp_path / "pair" / "model.onnx")
    return tmp_path / "pair"


@pytest.fixture
def slow_dir(tmp_path: Path) -> Path:
    onnx_models.slow(tmp_path / "slow" / "model.onnx")
    return tmp_path / "slow"
