"""Warmup in the running app: prompt sets from the model dir, failures and the deadline → FAILED."""

from __future__ import annotations

import gc
import json
from pathlib import Path

from starlette.testclient import TestClient

from tests.conftest import serving, serving_runtime, wait_settled
from warmgate.config import load_config
from warmgate.models.base import Bucket
from warmgate.models.fetch import default_cache_dir, fetch_default_model
from warmgate.server.app import create_app
from warmgate.server.runtime import Runtime
from warmgate.warmup.predictor import work
from warmgate.warmup.promptset import default_prompt_set


def _write_set(model_dir: Path, lines: list[dict[str, object]]) -> None:
    (model_dir / "warmup").mkdir(exist_ok=True)
    text = "\n".join(json.dumps(line) for line in lines) + "\n"
    (model_dir / "warmup" / "traffic.jsonl").write_text(text)


def test_prompt_set_line_covers_its_bucket(linear_dir: Path) -> None:
    _write_set(linear_dir, [{"name": "pair", "body": {"inputs": [[1, 2, 3, 4], [4, 3, 2, 1]]}, "repeat": 2}])
    with serving(linear_dir, max_batch="4") as client:
        body = client.get("/readyz").json()
        assert body["phase"] == "ready"
        metrics = client.get("/metrics").text
        assert 'warmgate_warmup_seconds{shape="pair"}' in metrics
        # The prompt line covered bucket b2, so no synthetic request was needed for it.
        assert 'shape="synthetic-b2"' not in metrics
        assert 'shape="synthetic-b1"' in metrics and 'shape="synthetic-b4"' in metrics
        assert body["warmup"]["done"] == body["warmup"]["total"] == 3


def test_expected_error_status_is_a_passing_warmup_line(linear_dir: Path) -> None:
    _write_set(linear_dir, [{"name": "bad-width", "body": {"inputs": [[1, 2]]}, "expect_status": 400}])
    with serving(linear_dir, max_batch="2") as client:
        assert client.get("/ping").status_code == 200


def test_failing_warmup_request_is_failed_with_the_shape_named(linear_dir: Path) -> None:
    _write_set(linear_dir, [{"name": "broken-shape", "body": {"inputs": [[1, 2, 3]]}}])
    with serving(linear_dir) as client:
        ping = client.get("/ping")
        assert ping.status_code == 503
        assert ping.json()["phase"] == "failed"
        assert "broken-shape" in ping.json()["reason"]
        assert "axis 1 must be 4" in ping.json()["reason"]


def test_warmup_deadline_is_failed(slow_dir: Path) -> None:
    with serving(slow_dir, warmup_timeout_s="0.01", max_batch="32") as client:
        ping = client.get("/ping").json()
        assert ping["phase"] == "failed"
        assert "WARMGATE_WARMUP_TIMEOUT" in ping["reason"]


def test_warmup_off_goes_ready_without_driving_requests(linear_dir: Path) -> None:
    with serving(linear_dir, warmup="0") as client:
        assert client.get("/readyz").json()["reason"] == "warmup disabled"
        assert "warmgate_eager_runs_total 0.0" in client.get("/metrics").text


def test_recorder_samples_traffic_shapes_but_not_warmup(linear_dir: Path) -> None:
    with serving(linear_dir, record_shapes="1", max_batch="4") as client:
        assert client.get("/warmgate/shapes").json()["total"] == 0  # warmup is not traffic
        client.post("/invocations", json={"inputs": [[1, 2, 3, 4]] * 3})
        shapes = client.get("/warmgate/shapes").json()
        assert shapes["total"] == 1
        assert shapes["shapes"][0]["rows"] == 4  # rounded up to the batch bucket
        assert shapes["shapes"][0]["content_type"] == "application/json"
    with serving(linear_dir) as client:
        off = client.get("/warmgate/shapes")
        assert off.status_code == 404
        assert "WARMGATE_RECORD" in off.json()["message"]


def test_text_model_warms_every_shape_least_work_first_and_each_bucket_once() -> None:
    """The real text model: the runtime places every default prompt line before it runs (its
    bucket and what one run computes), so prompt lines and the synthetic requests of the buckets
    no line covers run in one order, least work first; every bucket is warmed."""
    model_dir = fetch_default_model(default_cache_dir())
    with serving_runtime(model_dir, backend="torch", max_batch="4", seq_lens="16,32,64") as (client, runtime):
        assert client.get("/readyz").json()["phase"] == "ready"
        in_process = [r for r in runtime.warmup_results if not r.over_http]
        works = [work(r.ran) for r in in_process if r.ran is not None]
        assert len(works) == len(in_process)  # the model said what every run computed
        assert works == sorted(works)
        lines = {line.name for line in default_prompt_set(4)}
        assert lines <= {r.name for r in in_process}
        plan = {Bucket(b, s) for b in (1, 2, 4) for s in (16, 32, 64)}
        # (Lines longer than the largest sequence bucket run outside the plan: bucket None.)
        assert {r.bucket for r in in_process} - {None} == plan
        by_line = {r.bucket for r in in_process if r.name in lines} - {None}
        synthetic = [r.bucket for r in in_process if r.name.startswith("synthetic-")]
        assert sorted(synthetic, key=str) == sorted(plan - by_line, key=str)  # each uncovered bucket once


def test_a_runtime_that_owns_its_process_freezes_the_heap_before_ready(linear_dir: Path) -> None:
    """``serve`` owns its process: the heap left after load and warmup is frozen out of the
    collector before READY; an in-process app (the default) leaves the host's collector alone."""
    gc.unfreeze()
    try:
        with serving(linear_dir) as client:
            assert client.get("/ping").status_code == 200
            assert gc.get_freeze_count() == 0
        config = load_config({"model_dir": str(linear_dir), "fetch_default": "0"}, env={})
        runtime = Runtime(config, freeze_heap=True)
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            wait_settled(client)
            assert client.get("/ping").status_code == 200
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_keep_warm_that_cannot_run_is_refused_with_the_reason(linear_dir: Path) -> None:
    with serving(linear_dir, keep_warm_s="0") as client:
        off = client.post("/warmgate/keep-warm")
        assert off.status_code == 409
        assert off.json() == {"error": "conflict", "message": "the keep-warm is off (--keep-warm-s 0)"}
    with serving(linear_dir, keep_warm_s="30", warmup="0") as client:
        unwarmed = client.post("/warmgate/keep-warm")
        assert unwarmed.status_code == 409 and "--no-warmup" in unwarmed.json()["message"]
