"""/invocations and OIP infer on a real ONNX model: formats, and every client mistake → 4xx JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import serving
from tests.onnx_models import BIAS, WEIGHT


def expected(x: list[list[float]]) -> np.ndarray:
    return np.asarray(x, dtype=np.float32) @ WEIGHT + BIAS


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.fixture
def linear(linear_dir: Path):  # type: ignore[no-untyped-def]
    with serving(linear_dir, max_batch="8", max_payload_mb="0.01") as client:
        yield client


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": {"x": [[1, 2, 3, 4], [0, 0, 0, 1]]}},
        {"inputs": [[1, 2, 3, 4], [0, 0, 0, 1]]},
        [[1, 2, 3, 4], [0, 0, 0, 1]],
    ],
)
def test_json_forms(linear, body) -> None:  # type: ignore[no-untyped-def]
    response = linear.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    got = np.asarray(response.json()["outputs"]["y"])
    np.testing.assert_allclose(got, expected([[1, 2, 3, 4], [0, 0, 0, 1]]), rtol=1e-6)


def test_npy_in_and_out(linear) -> None:  # type: ignore[no-untyped-def]
    x = np.array([[1, 1, 1, 1], [2, 0, 0, 0], [0, 0, 3, 0]], dtype=np.float64)  # cast to float32
    response = linear.post(
        "/invocations",
        content=npy(x),
        headers={"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
    )
    assert response.status_code == 200
    got = np.load(io.BytesIO(response.content))
    np.testing.assert_allclose(got, expected(x.tolist()), rtol=1e-6)


def test_oip_infer(linear) -> None:  # type: ignore[no-untyped-def]
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    response = linear.post("/v2/models/linear/infer", json=body)
    assert response.status_code == 200
    out = response.json()
    assert out["model_name"] == "linear"
    assert out["outputs"][0]["name"] == "y" and out["outputs"][0]["shape"] == [1, 3]
    np.testing.assert_allclose(out["outputs"][0]["data"], expected([[1, 2, 3, 4]])[0], rtol=1e-6)


def test_multi_input_model_json_and_npz(two_input_dir: Path) -> None:
    with serving(two_input_dir) as client:
        body = {"inputs": {"a": [[1.5, 2.0]], "b": [[2, 3]]}}
        out = client.post("/invocations", json=body).json()["outputs"]
        assert out == {"scaled": [[3.0, 6.0]], "total": [9.0]}
        buf = io.BytesIO()
        np.savez(buf, a=np.ones((2, 2), np.float32), b=np.array([[1, 2], [3, 4]]))
        response = client.post(
            "/invocations",
            content=buf.getvalue(),
            headers={"Content-Type": "application/x-npz", "Accept": "application/x-npz"},
        )
        assert response.status_code == 200
        with np.load(io.BytesIO(response.content)) as archive:
            np.testing.assert_allclose(archive["total"], [3.0, 7.0])
        single = client.post("/invocations", json={"inputs": [[1, 2]]})
        assert single.status_code == 400
        assert "2 inputs" in single.json()["message"]
        npy_out = client.post("/invocations", json=body, headers={"Accept": "application/x-npy"})
        assert npy_out.status_code == 406
        assert "application/x-npz" in npy_out.json()["message"]


BAD = [
    ("malformed JSON", b'{"inputs": [[1, 2', "application/json", None, 400, "not valid JSON"),
    ("ragged", json.dumps({"inputs": [[1, 2, 3, 4], [1]]}), "application/json", None, 400, "rectangular"),
    ("strings", json.dumps({"inputs": [["a", "b", "c", "d"]]}), "application/json", None, 400, "numbers"),
    ("wrong rank", json.dumps({"inputs": [1, 2, 3, 4]}), "application/json", None, 400, "rank 2"),
    ("wrong width", json.dumps({"inputs": [[1, 2, 3]]}), "application/json", None, 400, "axis 1 must be 4"),
    (
        "unknown input",
        json.dumps({"inputs": {"x": [[1, 2, 3, 4]], "z": [1]}}),
        "application/json",
        None,
        400,
        "unknown input name(s) ['z']",
    ),
    ("missing input", json.dumps({"inputs": {}}), "application/json", None, 400, "missing input(s) ['x']"),
    ("no inputs key", json.dumps({"data": [[1, 2, 3, 4]]}), "application/json", None, 400, '{"inputs"'),
    ("empty body", b"", "application/json", None, 400, "empty"),
    ("content type", b"1,2,3,4", "text/csv", None, 415, "text/csv"),
    ("accept", json.dumps({"inputs": [[1, 2, 3, 4]]}), "application/json", "text/csv", 406, "text/csv"),
    ("bad npy", b"\x93NUMPY garbage", "application/x-npy", None, 400, ".npy"),
    (
        "too large",
        json.dumps({"inputs": [[0.0] * 4] * 2000}),
        "application/json",
        None,
        413,
        "SAGEMAKER_MAX_PAYLOAD_IN_MB",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "ctype", "accept", "status", "needle"), BAD, ids=[b[0] for b in BAD]
)
def test_bad_input_gets_a_named_4xx(linear, case, body, ctype, accept, status, needle) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": ctype}
    if accept:
        headers["Accept"] = accept
    response = linear.post("/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert needle in response.json()["message"]
    # Nothing is lost: the server still serves a good request afterwards.
    assert linear.post("/invocations", json={"inputs": [[1, 2, 3, 4]]}).status_code == 200


def test_wrong_dtype_for_integer_input(two_input_dir: Path) -> None:
    with serving(two_input_dir) as client:
        response = client.post("/invocations", json={"inputs": {"a": [[1, 2]], "b": [[1.5, 2]]}})
        assert response.status_code == 400
        assert "'b' expects dtype int64" in response.json()["message"]
        oip = {
            "inputs": [
                {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
                {"name": "b", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
            ]
        }
        mismatch = client.post("/v2/models/pair/infer", json=oip)
        assert mismatch.status_code == 400
        assert "does not match the model's INT64" in mismatch.json()["message"]
        oip["inputs"][1] = {"name": "b", "shape": [1, 3], "datatype": "INT64", "data": [1, 2]}
        short = client.post("/v2/models/pair/infer", json=oip)
        assert short.status_code == 400
        assert "do not fill shape [1, 3]" in short.json()["message"]


def test_oversize_batch_rejected_or_run_eagerly(linear_dir: Path) -> None:
    rows = [[1, 2, 3, 4]] * 5
    with serving(linear_dir, max_batch="4", oversize="reject") as client:
        response = client.post("/invocations", json={"inputs": rows})
        assert response.status_code == 413
        assert "largest bucket (4)" in response.json()["message"]
    with serving(linear_dir, max_batch="4", oversize="eager") as client:
        response = client.post("/invocations", json={"inputs": rows})
        assert response.status_code == 200
        assert len(response.json()["outputs"]["y"]) == 5
        assert "warmgate_out_of_bucket_requests_total 1.0" in client.get("/metrics").text


def test_timeout_is_504_and_queued_work_is_dropped(slow_dir: Path) -> None:
    x = npy(np.ones((512, 384), np.float32))  # ~4 GFLOP: far longer than the timeout
    with serving(slow_dir, warmup="0", timeout_s="0.001", max_batch="32") as client:
        response = client.post("/invocations", content=x, headers={"Content-Type": "application/x-npy"})
        assert response.status_code == 504
        assert "SAGEMAKER_MODEL_SERVER_TIMEOUT" in response.json()["message"]
        assert "warmgate_queue_depth 0.0" in client.get("/metrics").text
