"""The built-in text-embedding model served over HTTP: every text media type, OIP, metadata,
and embeddings equal to sentence-transformers' reference through the server."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from tests.conftest import serving_runtime
from warmgate.models.base import Bucket
from warmgate.models.fetch import default_cache_dir, fetch_default_model
from warmgate.server.runtime import Runtime

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[TestClient, Runtime]]:
    model_dir = fetch_default_model(default_cache_dir())
    with serving_runtime(
        model_dir, backend="torch", max_batch="4", seq_lens="16,32,64", model_name="minilm"
    ) as pair:
        yield pair


@pytest.fixture(scope="module")
def minilm(served: tuple[TestClient, Runtime]) -> TestClient:
    return served[0]


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    items = json.loads((FIXTURES / "minilm-embeddings.json").read_text())["items"]
    return {item["text"]: np.asarray(item["embedding"], np.float32) for item in items}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_served_embeddings_match_reference(minilm: Any, reference: dict[str, np.ndarray]) -> None:
    texts = [t for t in reference if len(t) < 200][:4]
    response = minilm.post("/invocations", json={"inputs": texts})
    assert response.status_code == 200, response.text
    got = np.asarray(response.json()["embeddings"], np.float32)
    assert got.shape == (len(texts), 384)
    for text, row in zip(texts, got, strict=True):
        assert cosine(row, reference[text]) >= 0.9999


def test_text_media_types(minilm: Any) -> None:
    plain = minilm.post("/invocations", content="recommend a manga", headers={"Content-Type": "text/plain"})
    single = minilm.post("/invocations", json={"inputs": "recommend a manga"})
    bare = minilm.post("/invocations", json="recommend a manga")
    vectors = [np.asarray(r.json()["embeddings"]) for r in (plain, single, bare)]
    assert all(v.shape == (1, 384) for v in vectors)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)

    lines = '"dark fantasy"\n{"inputs": "slice of life"}\n\n"sports manga"\n'
    batch = minilm.post("/invocations", content=lines, headers={"Content-Type": "application/jsonlines"})
    assert batch.status_code == 200
    assert batch.headers["content-type"].startswith("application/jsonlines")
    out = [json.loads(line) for line in batch.text.splitlines()]
    assert len(out) == 3 and all(len(o["embedding"]) == 384 for o in out)

    npy = minilm.post("/invocations", json={"inputs": ["a", "b"]}, headers={"Accept": "application/x-npy"})
    assert np.load(io.BytesIO(npy.content)).shape == (2, 384)


def test_oip_and_metadata(minilm: Any) -> None:
    body = {"inputs": [{"name": "inputs", "shape": [2], "datatype": "BYTES", "data": ["shonen", "seinen"]}]}
    response = minilm.post("/v2/models/minilm/infer", json=body)
    assert response.status_code == 200
    tensor = response.json()["outputs"][0]
    assert tensor["name"] == "embeddings" and tensor["shape"] == [2, 384]
    meta = minilm.get("/v2/models/minilm").json()
    assert meta["dimension"] == 384
    assert meta["buckets"][:2] == ["b1xs16", "b2xs16"]
    assert meta["platform"] == "torch"


@pytest.mark.parametrize(
    ("body", "ctype", "status", "needle"),
    [
        (json.dumps({"inputs": []}), "application/json", 400, "non-empty list"),
        (json.dumps({"inputs": ["ok", 3]}), "application/json", 400, "inputs[1] must be a string"),
        ("not json\n", "application/jsonlines", 400, "line 1"),
        ("\xff", "text/csv", 415, "text/csv"),
    ],
)
def test_text_bad_input(minilm: Any, body: str, ctype: str, status: int, needle: str) -> None:
    response = minilm.post("/invocations", content=body, headers={"Content-Type": ctype})
    assert response.status_code == status, response.text[:300]
    assert needle in response.json()["message"]


def out_of_bucket(client: Any) -> float:
    line = next(
        ln for ln in client.get("/metrics").text.splitlines() if ln.startswith("warmgate_out_of_bucket")
    )
    return float(line.split()[-1])


def test_more_texts_than_the_largest_bucket_run_eagerly_and_are_counted(minilm: Any) -> None:
    before = out_of_bucket(minilm)
    response = minilm.post("/invocations", json={"inputs": ["x"] * 5})
    assert response.status_code == 200
    assert len(response.json()["embeddings"]) == 5
    assert out_of_bucket(minilm) == before + 1


def test_every_bucket_was_warmed_before_ready(served: tuple[TestClient, Runtime]) -> None:
    client, runtime = served
    ready = client.get("/readyz").json()
    assert ready["warmup"]["done"] == ready["warmup"]["total"] > 0
    # What warmup actually ran (each shape's bucket, from the default prompt set or a synthetic
    # request), not the configured list: every bucket of the plan is among them.
    warmed = {r.bucket for r in runtime.warmup_results if r.bucket is not None}
    assert warmed == {Bucket(b, s) for b in (1, 2, 4) for s in (16, 32, 64)}
    text = client.get("/metrics").text
    for result in runtime.warmup_results:  # and each shape's time was exported
        assert f'warmgate_warmup_seconds{{shape="{result.name}"}}' in text
