"""Shared fixtures: real ONNX models built per test, in-process apps with their lifespan."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from tests import onnx_models
from warmgate.autoscaling.pool import PoolConfig
from warmgate.config import load_config
from warmgate.fleet.store.local_postgres import Cluster, PostgresUnavailable, start_cluster
from warmgate.fleet.store.postgres import PostgresPoolStore
from warmgate.server.app import create_app
from warmgate.server.runtime import ModelFactory, Runtime, default_model_factory

SETTLED = {"ready", "failed"}


def wait_settled(client: TestClient, timeout_s: float = 240.0) -> dict[str, Any]:
    """Poll /readyz until the replica is READY or FAILED; return that body. Fails the test
    when neither happens within ``timeout_s`` (generous: the machine may be shared)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get("/readyz").json()
        if body["phase"] in SETTLED:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled within {timeout_s:g}s: {body}")
        time.sleep(0.02)  # poll interval; the loop ends on the condition


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout_s:g}s")
        time.sleep(0.01)


@contextmanager
def serving_runtime(
    model_dir: Path,
    factory: ModelFactory = default_model_factory,
    settle: bool = True,
    **options: Any,
) -> Iterator[tuple[TestClient, Runtime]]:
    """An in-process app (lifespan included) over ``model_dir`` with config ``options``, and the
    runtime it serves. The keep-warm is off unless ``options`` turn it on: these tests count or
    fault their models' calls, and a background caller between READY and the first request would
    be one more (it has tests of its own, in process and on a real server)."""
    defaults = {"model_dir": str(model_dir), "fetch_default": "0", "keep_warm_s": "0"}
    config = load_config({**defaults, **options}, env={})
    runtime = Runtime(config, factory)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        if settle:
            wait_settled(client)
        yield client, runtime


@contextmanager
def serving(
    model_dir: Path,
    factory: ModelFactory = default_model_factory,
    settle: bool = True,
    **options: Any,
) -> Iterator[TestClient]:
    """An in-process app (lifespan included) over ``model_dir`` with config ``options``."""
    with serving_runtime(model_dir, factory, settle, **options) as (client, _):
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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    try:
        cluster = start_cluster()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL store tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_bare_conninfo(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty schema of the throwaway cluster, first on the search path of every
    connection (no pool tables: see ``postgres_conninfo`` for a migrated one)."""
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(cluster.conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    yield f"{cluster.conninfo} options='-c search_path={schema}'"
    with psycopg.connect(cluster.conninfo, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_conninfo(postgres_bare_conninfo: str) -> str:
    """A fresh schema migrated to the pool store's latest version, as `warmgate pool migrate`
    leaves it before controllers open the store."""
    PostgresPoolStore(postgres_bare_conninfo, PoolConfig(), migrate=True).close()
    return postgres_bare_conninfo
