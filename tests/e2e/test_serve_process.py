"""A real ``warmgate serve`` process: readiness gating, draining on SIGTERM, failure, admission."""

from __future__ import annotations

import io
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests import onnx_models
from tests.e2e.process import Replica, replica
from tests.e2e.reliability import switch_model, wait_until
from warmgate.warmup.loopback import WARMUP_HEADER

pytestmark = pytest.mark.e2e


def _npy(rows: int, width: int = 384) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones((rows, width), np.float32))
    return buf.getvalue()


def _metric(server: Replica, name: str) -> float:
    text = server.get("/metrics").text
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(name))


def in_flight(server: Replica) -> float:
    return _metric(server, "warmgate_requests_in_flight ")


def rejected(server: Replica) -> float:
    return _metric(server, 'warmgate_admission_rejected_total{reason="full"}')


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
        body = _npy(256)  # larger than every bucket: each runs alone, so they queue up

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
            wait_until(lambda: in_flight(server) >= 4, 30, "requests in flight")
            server.proc.send_signal(signal.SIGTERM)
            draining = server.wait_for("/ping", 503, timeout_s=10)
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
        server.wait_for("/ping", 503)
        wait_until(lambda: server.get("/ping").json()["phase"] == "failed", 30, "phase failed")
        ping = server.get("/ping")
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
        assert rejected(server) == codes.count(503)  # every refusal is counted, and only those


@pytest.mark.parametrize("fixed", [1, 4])
def test_a_fixed_batch_onnx_model_serves_64_concurrent_same_shape_requests(
    tmp_path: Path, fixed: int
) -> None:
    onnx_models.linear(tmp_path / "fixed" / "model.onnx", batch=fixed)
    rng = np.random.default_rng(fixed)
    inputs = [rng.standard_normal((fixed, 4)).astype(np.float32) for _ in range(64)]
    with replica(tmp_path / "fixed", tmp_path, "--max-batch", "16", "--timeout-s", "30") as server:
        server.wait_for("/ping", 200)

        def call(x: np.ndarray) -> httpx.Response:
            return httpx.post(server.url + "/invocations", json={"inputs": x.tolist()}, timeout=60)

        with ThreadPoolExecutor(64) as pool:
            responses = list(pool.map(call, inputs))
        assert [r.status_code for r in responses] == [200] * 64
        for x, r in zip(inputs, responses, strict=True):
            expected = x @ onnx_models.WEIGHT + onnx_models.BIAS
            np.testing.assert_allclose(r.json()["outputs"]["y"], expected, rtol=1e-5)
        assert server.get("/ping").status_code == 200  # and the replica is still healthy


def test_a_stall_beyond_recovery_fails_and_exit_on_failure_exits_non_zero(tmp_path: Path) -> None:
    model_dir = switch_model(tmp_path / "switch")
    args = ("--watchdog-s", "0.2", "--stall-fail-s", "1", "--timeout-s", "2", "--exit-on-failure")
    with replica(model_dir, tmp_path, *args) as server:
        server.wait_for("/ping", 200)
        (model_dir / "stall").touch()  # never released: the call is wedged for good

        def call() -> int:
            return httpx.post(server.url + "/invocations", json=[[1, 2]], timeout=30).status_code

        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(call)
            assert server.wait_for("/ping", 503, timeout_s=10).json()["phase"] in ("degraded", "failed")
            assert server.proc.wait(60) == 1  # exits although the inference thread never returns
            assert stuck.result(30) == 504
        log = server.log.read_text()
        assert "phase ready -> degraded" in log and "phase degraded -> failed" in log
        assert "WARMGATE_STALL_FAIL_S" in log


def keep_warm_runs(server: Replica) -> float:
    return _metric(server, "warmgate_keep_warm_runs_total ")


def _keep_warm_ends(server: Replica) -> list[int]:
    """The runs of each keep-warm that a request ended, from the server's log."""
    ended = "keep-warm: "
    lines = [ln for ln in server.log.read_text().splitlines() if ended in ln]
    return [int(ln.split(ended)[1].split()[0]) for ln in lines if "ended by a request" in ln]


def test_the_keep_warm_runs_from_ready_and_the_first_request_ends_it(slow_dir: Path, tmp_path: Path) -> None:
    def request() -> None:
        reply = httpx.post(
            server.url + "/invocations",
            content=_npy(1),
            headers={"Content-Type": "application/x-npy"},
            timeout=30,
        )
        assert reply.status_code == 200

    with replica(slow_dir, tmp_path) as server:
        server.wait_for("/ping", 200)
        wait_until(lambda: keep_warm_runs(server) >= 20, 30.0, "the keep-warm never ran after READY")
        request()
        wait_until(lambda: len(_keep_warm_ends(server)) == 1, 30.0, "the first request did not end it")
        runs = _keep_warm_ends(server)[0]
        assert keep_warm_runs(server) == runs  # its task has returned: no run after the request

        # A claim re-arms it (a standby about to take traffic); the next request ends it again.
        rearmed = httpx.post(server.url + "/warmgate/keep-warm", timeout=30)
        assert rearmed.status_code == 202 and rearmed.json()["keep_warm_s"] == 30.0
        wait_until(lambda: keep_warm_runs(server) >= runs + 20, 30.0, "the re-armed keep-warm never ran")
        request()
        wait_until(lambda: len(_keep_warm_ends(server)) == 2, 30.0, "the next request did not end it")
        assert keep_warm_runs(server) == runs + _keep_warm_ends(server)[1]
