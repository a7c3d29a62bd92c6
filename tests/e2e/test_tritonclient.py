"""NVIDIA's own ``tritonclient.http`` against a real ``warmgate serve``: its default ``infer``
sends and asks for binary tensors (the OIP binary tensor data extension)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests import onnx_models
from tests.e2e.process import Replica, replica
from tests.unit.models.bert_dirs import write_bert_dir

pytestmark = pytest.mark.e2e


@pytest.fixture
def linear_server(linear_dir: Path, tmp_path: Path) -> Iterator[Replica]:
    with replica(linear_dir, tmp_path, "--max-batch", "4", "--model-name", "linear") as server:
        server.wait_for("/ping", 200)
        yield server


def _client(server: Replica) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def test_default_binary_infer_round_trips(linear_server: Replica) -> None:
    client = _client(linear_server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("linear")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = triton.InferInput("x", [3, 4], "FP32")
    tensor.set_data_from_numpy(x)  # binary by default
    result = client.infer("linear", [tensor])  # no outputs named: all come back binary
    assert result.get_output("y")["parameters"]["binary_data_size"] == 3 * 3 * 4
    expected = x @ onnx_models.WEIGHT + onnx_models.BIAS
    np.testing.assert_allclose(result.as_numpy("y"), expected, rtol=1e-6)


def test_json_output_asked_for_by_name(linear_server: Replica) -> None:
    client = _client(linear_server)
    x = np.ones((1, 4), np.float32)
    tensor = triton.InferInput("x", [1, 4], "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)
    wanted = [triton.InferRequestedOutput("y", binary_data=False)]
    result = client.infer("linear", [tensor], outputs=wanted, request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    assert "data" in result.get_output("y")
    np.testing.assert_allclose(result.as_numpy("y"), x @ onnx_models.WEIGHT + onnx_models.BIAS, rtol=1e-6)


def test_bad_binary_input_is_a_4xx_naming_the_problem(linear_server: Replica) -> None:
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(np.ones((2, 4), np.float32))
    body, length = triton.InferenceServerClient.generate_request_body([tensor])
    headers = {"Inference-Header-Content-Length": str(length)}
    short = httpx.post(f"{linear_server.url}/v2/models/linear/infer", content=body[:-4], headers=headers)
    assert short.status_code == 400
    assert "runs past the body" in short.json()["message"]
    wrong = triton.InferInput("x", [2, 4], "INT32")
    wrong.set_data_from_numpy(np.ones((2, 4), np.int32))
    with pytest.raises(InferenceServerException) as raised:
        _client(linear_server).infer("linear", [wrong])
    assert raised.value.status() == "400"
    assert "datatype INT32 does not match the model's FP32" in raised.value.message()  # KServe's "error"
    body, length = triton.InferenceServerClient.generate_request_body([wrong])
    headers = {"Inference-Header-Content-Length": str(length)}
    refused = httpx.post(f"{linear_server.url}/v2/models/linear/infer", content=body, headers=headers)
    assert "datatype INT32 does not match the model's FP32" in refused.json()["message"]


def test_text_model_takes_binary_strings(tmp_path: Path) -> None:
    model_dir = write_bert_dir(tmp_path / "tiny", None)
    args = ("--backend", "torch", "--max-batch", "2", "--seq-lens", "16", "--model-name", "tiny")
    with replica(model_dir, tmp_path, *args) as server:
        server.wait_for("/ping", 200)
        texts = np.array(["hello world", "warm gate"], dtype=object)
        tensor = triton.InferInput("inputs", [2], "BYTES")
        tensor.set_data_from_numpy(texts)
        result = _client(server).infer("tiny", [tensor])
        embeddings = result.as_numpy("embeddings")
        assert embeddings.shape[0] == 2 and embeddings.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
        same = server.get("/metrics")  # the server is still healthy after binary traffic
        assert same.status_code == 200
