"""Health, readiness and metadata endpoints of the in-process app, in every phase."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.conftest import serving, serving_runtime, wait_settled, wait_until
from warmgate.config import Config
from warmgate.models.base import Model
from warmgate.server.runtime import default_model_factory


def test_ping_is_503_until_ready_then_200_with_empty_body(linear_dir: Path) -> None:
    release = threading.Event()

    def held_factory(config: Config, model_dir: Path) -> Model:
        release.wait(10)
        return default_model_factory(config, model_dir)

    with serving(linear_dir, held_factory, settle=False) as client:
        loading = client.get("/ping")
        assert loading.status_code == 503
        assert loading.json()["phase"] == "loading"
        assert loading.json()["warmup"] == {"done": 0, "total": 0, "current": ""}
        assert client.get("/livez").status_code == 200  # alive while loading
        assert client.get("/v2/health/ready").status_code == 503
        assert client.post("/invocations", json={"inputs": [[1, 2, 3, 4]]}).status_code == 503
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert 'warmgate_phase{phase="loading"} 1.0' in metrics.text
        release.set()
        assert wait_settled(client)["phase"] == "ready"
        ready = client.get("/ping")
        assert ready.status_code == 200
        assert ready.content == b""


def test_ready_endpoints_and_metadata(linear_dir: Path) -> None:
    with serving(linear_dir, max_batch="8") as client:
        body = client.get("/readyz").json()
        assert body["phase"] == "ready"
        assert body["warmup"]["done"] == body["warmup"]["total"] == 4  # b1, b2, b4, b8
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2/models/linear/ready").json() == {"name": "linear", "ready": True}
        missing = client.get("/v2/models/nope/ready")
        assert missing.status_code == 404
        assert "nope" in missing.json()["message"]
        meta = client.get("/v2/models/linear").json()
        assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]
        assert meta["buckets"] == ["b1", "b2", "b4", "b8"]
        assert meta["providers"] == ["CPUExecutionProvider"]
        assert client.get("/v2").json()["name"] == "warmgate"
        params = client.get("/execution-parameters").json()
        assert params["BatchStrategy"] == "MULTI_RECORD"
        assert params["MaxPayloadInMB"] == 6


def test_warmup_drives_every_bucket_through_the_real_path(linear_dir: Path) -> None:
    with serving(linear_dir, max_batch="4") as client:
        text = client.get("/metrics").text
        for label in ("b1", "b2", "b4"):
            assert f'warmgate_warmup_seconds{{shape="synthetic-{label}"}}' in text
        # Every warmup request went through admission-free pipeline → batcher → backend.
        batches = [ln for ln in text.splitlines() if ln.startswith("warmgate_batch_size_rows_count")]
        assert float(batches[0].split()[-1]) >= 3  # ≥ one run per bucket until settled
        eager = [ln for ln in text.splitlines() if ln.startswith("warmgate_eager_runs_total")]
        assert float(eager[0].split()[-1]) >= 3


def test_corrupt_model_is_failed_with_a_readable_reason(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.onnx").write_bytes(b"this is not a protobuf")
    with serving(tmp_path / "bad") as client:
        ping = client.get("/ping")
        assert ping.status_code == 503
        assert ping.json()["phase"] == "failed"
        assert "model.onnx" in ping.json()["reason"]
        live = client.get("/livez")
        assert live.status_code == 503
        assert live.json()["phase"] == "failed"
        assert 'warmgate_phase{phase="failed"} 1.0' in client.get("/metrics").text


def test_empty_model_dir_names_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with serving(tmp_path / "empty") as client:
        reason = client.get("/ping").json()["reason"]
        assert "model.onnx" in reason and "code/inference.py" in reason


def test_unknown_route_is_json_404(linear_dir: Path) -> None:
    with serving(linear_dir) as client:
        response = client.get("/nope")
        assert response.status_code == 404
        assert response.json()["error"] == "http_error"


def test_drain_during_loading_is_a_stop_not_a_failure(linear_dir: Path) -> None:
    release = threading.Event()

    def held_factory(config: Config, model_dir: Path) -> Model:
        release.wait(10)
        return default_model_factory(config, model_dir)

    with serving_runtime(linear_dir, held_factory, settle=False, exit_on_failure="1") as (client, runtime):
        assert runtime.begin_drain("SIGTERM received")
        release.set()
        wait_until(lambda: not runtime.starting, what="start-up ended")
        assert runtime.model is not None  # the load finished, and start-up stopped after it
        body = client.get("/ping").json()
        assert body["phase"] == "draining"
        assert runtime.exit_code is None  # no exit code 1 for a replica told to stop


def _received(metrics_text: str, route: str, phase: str) -> float:
    prefix = f'warmgate_requests_received_total{{phase="{phase}",route="{route}"}} '
    lines = [line for line in metrics_text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


def test_requests_received_are_counted_by_the_phase_they_arrived_in(linear_dir: Path) -> None:
    release = threading.Event()

    def held_factory(config: Config, model_dir: Path) -> Model:
        release.wait(10)
        return default_model_factory(config, model_dir)

    with serving(linear_dir, held_factory, settle=False) as client:
        assert client.post("/invocations", json={"inputs": [[1, 2, 3, 4]]}).status_code == 503
        oip = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        refused = client.post("/v2/models/linear/infer", json=oip)  # no model loaded yet: 404
        assert refused.status_code == 404
        assert "linear" in refused.json()["error"]  # OIP: the message itself, as KServe has it
        text = client.get("/metrics").text
        assert _received(text, "/invocations", "loading") == 1
        assert _received(text, "/v2/models/{name}/infer", "loading") == 1
        release.set()
        assert wait_settled(client)["phase"] == "ready"
        for _ in range(3):
            assert client.post("/invocations", json={"inputs": [[1, 2, 3, 4]]}).status_code == 200
        text = client.get("/metrics").text
        assert _received(text, "/invocations", "ready") == 3
        assert _received(text, "/invocations", "loading") == 1  # warmup's own requests not counted
        assert _received(text, "/invocations", "warming") == 0
