"""The Open Inference Protocol body, JSON and binary, built the way NVIDIA's tritonclient builds it."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton

from warmgate.errors import BadRequest
from warmgate.models.base import TensorSpec
from warmgate.server import oip

SPECS = (TensorSpec("x", "float32", (None, 4)),)


def _triton_body(
    *inputs: triton.InferInput, outputs: list[triton.InferRequestedOutput] | None = None
) -> tuple[bytes, str | None]:
    """The exact body and header tritonclient's ``infer`` would send."""
    body, header_length = triton.InferenceServerClient.generate_request_body(list(inputs), outputs=outputs)
    return body, None if header_length is None else str(header_length)


def test_binary_input_from_tritonclient_is_decoded() -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    tensor = triton.InferInput("x", [2, 4], "FP32")
    tensor.set_data_from_numpy(x)  # binary_data=True is tritonclient's default
    body, length = _triton_body(tensor)
    assert length is not None
    request = oip.decode_request(body, length, SPECS)
    np.testing.assert_array_equal(request.values["x"], x)
    assert request.reply.binary_all  # no outputs named: tritonclient asks for all of them binary


def test_binary_bytes_input_is_a_list_of_strings() -> None:
    texts = np.array(["hello", "wörld", ""], dtype=object)
    tensor = triton.InferInput("inputs", [3], "BYTES")
    tensor.set_data_from_numpy(texts)
    body, length = _triton_body(tensor)
    assert oip.decode_request(body, length, None).values["inputs"] == ["hello", "wörld", ""]


def test_binary_response_is_read_back_by_tritonclient() -> None:
    y = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    z = np.array([1, 2], dtype=np.int64)
    reply = oip.ReplyOptions(request_id="r1", outputs=("y", "z"), binary=frozenset({"y"}))
    response = oip.encode_response("m", {"y": y, "z": z}, reply)
    assert response.header_length is not None
    header = json.loads(response.body[: response.header_length])
    assert header["id"] == "r1"
    assert header["outputs"][0]["parameters"] == {"binary_data_size": y.nbytes}
    assert header["outputs"][1]["data"] == [1, 2]
    result = triton.InferenceServerClient.parse_response_body(
        response.body, header_length=response.header_length
    )
    np.testing.assert_array_equal(result.as_numpy("y"), y)
    np.testing.assert_array_equal(result.as_numpy("z"), z)


def test_json_only_response_has_no_header_length() -> None:
    response = oip.encode_response("m", {"y": np.ones((1, 3), np.float32)}, oip.ReplyOptions())
    assert response.header_length is None
    assert json.loads(response.body)["outputs"][0]["data"] == [1.0, 1.0, 1.0]


def _binary(tensors: list[dict[str, object]], data: bytes, **doc: object) -> tuple[bytes, str]:
    header = json.dumps({"inputs": tensors, **doc}).encode()
    return header + data, str(len(header))


FP32_2x4 = {"name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": {"binary_data_size": 32}}


@pytest.mark.parametrize(
    ("tensors", "data", "header", "needle"),
    [
        ([FP32_2x4], bytes(16), None, "runs past the body"),
        ([FP32_2x4], bytes(40), None, "8 bytes after the JSON header"),
        ([{**FP32_2x4, "parameters": {"binary_data_size": 16}}], bytes(16), None, "needs 32"),
        ([{**FP32_2x4, "parameters": {"binary_data_size": -1}}], b"", None, "non-negative integer"),
        ([{**FP32_2x4, "data": [0] * 8}], bytes(32), None, "not both"),
        ([FP32_2x4], bytes(32), "banana", "must be an integer"),
        ([FP32_2x4], bytes(32), "100000", "the body has"),
        ([{**FP32_2x4, "datatype": "BF16"}], bytes(32), None, "unknown datatype"),
        ([{**FP32_2x4, "datatype": "INT32"}], bytes(32), None, "does not match the model's FP32"),
    ],
)
def test_bad_binary_inputs_name_the_problem(
    tensors: list[dict[str, object]], data: bytes, header: str | None, needle: str
) -> None:
    body, length = _binary(tensors, data)
    with pytest.raises(BadRequest, match=needle):
        oip.decode_request(body, header or length, SPECS)


@pytest.mark.parametrize("data", [b"", bytes(32)])
def test_binary_data_without_the_header_is_refused(data: bytes) -> None:
    body, _ = _binary([FP32_2x4], data)
    with pytest.raises(BadRequest, match="needs the Inference-Header-Content-Length header"):
        oip.decode_request(body, None, SPECS)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (struct.pack("<I", 10) + b"short", "runs past its binary_data_size"),  # truncated element
        (struct.pack("<I", 2) + b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_bad_bytes_element_is_refused(payload: bytes, needle: str) -> None:
    tensor = {
        "name": "inputs",
        "shape": [1],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": len(payload)},
    }
    body, length = _binary([tensor], payload)
    with pytest.raises(BadRequest, match=needle):
        oip.decode_request(body, length, None)


def test_unknown_requested_output_is_refused_before_inference() -> None:
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}
    body = json.dumps({"inputs": [tensor], "outputs": [{"name": "nope"}]}).encode()
    with pytest.raises(BadRequest, match=r"unknown output\(s\) \['nope'\]; the model's outputs are \['y'\]"):
        oip.decode_request(body, None, SPECS, ["y"])
