"""``codecs.for_model``: the codec chosen at load matches the model kind, and each one carries a
request of its kind through the real model and back to bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import onnx_models
from tests.unit.models.bert_dirs import write_bert_dir
from warmgate.errors import BadRequest
from warmgate.models.base import Model, ModelKind
from warmgate.models.handler import HandlerModel
from warmgate.models.onnx_backend import OnnxModel
from warmgate.models.text import TorchTextModel
from warmgate.server import codecs
from warmgate.server.codecs import Incoming, Protocol

HANDLER_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "handler_model"
ROWS = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 1.0]]
LINEAR = (np.asarray(ROWS, np.float32) @ onnx_models.WEIGHT + onnx_models.BIAS).tolist()


def _load(model: Model) -> Model:
    model.load()
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[ModelKind, Model]:
    root = tmp_path_factory.mktemp("codec-models")
    return {
        ModelKind.TENSOR: _load(OnnxModel(onnx_models.linear(root / "linear.onnx"), "linear", (1, 2, 4))),
        ModelKind.TEXT: _load(TorchTextModel(write_bert_dir(root / "tiny", None), device="cpu")),
        ModelKind.HANDLER: _load(HandlerModel(HANDLER_DIR, "handler")),
    }


def _roundtrip(model: Model, protocol: Protocol, request: Incoming) -> tuple[codecs.Encoded, Any]:
    codec = codecs.for_model(model)[protocol]
    decoded = codec.decode(request)
    (output,) = model.infer([model.prepare(decoded.payload)])
    return codec.encode(output, decoded), output


def test_tensor_model_gets_tensor_codecs(models: dict[ModelKind, Model]) -> None:
    model = models[ModelKind.TENSOR]
    chosen = codecs.for_model(model)
    assert isinstance(chosen[Protocol.SAGEMAKER], codecs.TensorCodec)
    assert isinstance(chosen[Protocol.OIP], codecs.OipCodec)
    body = json.dumps({"inputs": ROWS}).encode()
    encoded, _ = _roundtrip(model, Protocol.SAGEMAKER, Incoming(body, "application/json"))
    np.testing.assert_allclose(json.loads(encoded.body)["outputs"]["y"], LINEAR, rtol=1e-6)
    oip = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]}
    encoded, _ = _roundtrip(model, Protocol.OIP, Incoming(json.dumps(oip).encode(), "application/json"))
    (out,) = json.loads(encoded.body)["outputs"]
    assert (out["name"], out["datatype"], out["shape"]) == ("y", "FP32", [2, 3])


def test_text_model_gets_text_codecs(models: dict[ModelKind, Model]) -> None:
    model = models[ModelKind.TEXT]
    chosen = codecs.for_model(model)
    assert isinstance(chosen[Protocol.SAGEMAKER], codecs.TextCodec)
    assert isinstance(chosen[Protocol.OIP], codecs.OipTextCodec)
    lines = b'"hello"\n{"inputs": "warm gate"}\n'
    encoded, output = _roundtrip(
        model, Protocol.SAGEMAKER, Incoming(lines, "application/jsonlines", "application/jsonlines")
    )
    assert isinstance(output, np.ndarray) and output.shape[0] == 2  # the model returns the array itself
    rows = [json.loads(line)["embedding"] for line in encoded.body.splitlines()]
    np.testing.assert_allclose(rows, output, rtol=1e-6)
    oip = {"inputs": [{"name": "inputs", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}
    encoded, output = _roundtrip(model, Protocol.OIP, Incoming(json.dumps(oip).encode(), ""))
    (out,) = json.loads(encoded.body)["outputs"]
    assert (out["name"], out["shape"]) == ("embeddings", list(output.shape))


def test_text_codec_leaves_validation_to_the_model(models: dict[ModelKind, Model]) -> None:
    model = models[ModelKind.TEXT]
    decoded = codecs.for_model(model)[Protocol.SAGEMAKER].decode(Incoming(b'{"inputs": ["ok", 3]}', ""))
    with pytest.raises(BadRequest, match=r"inputs\[1\] must be a string"):
        model.prepare(decoded.payload)


def test_handler_model_gets_raw_bytes_and_no_oip(models: dict[ModelKind, Model]) -> None:
    model = models[ModelKind.HANDLER]
    chosen = codecs.for_model(model)
    assert isinstance(chosen[Protocol.SAGEMAKER], codecs.HandlerCodec)
    encoded, _ = _roundtrip(
        model, Protocol.SAGEMAKER, Incoming(json.dumps(ROWS).encode(), "application/json")
    )
    assert encoded.content_type == "application/json"
    np.testing.assert_allclose(json.loads(encoded.body), [[4.0, 5.5, 8.5], [0.0, 0.5, 1.0]])
    with pytest.raises(BadRequest, match="send its requests to /invocations"):
        chosen[Protocol.OIP].decode(Incoming(b"{}", "application/json"))
