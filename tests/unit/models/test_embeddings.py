"""MiniLM through both backends matches sentence-transformers' reference embeddings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.models.bert_dirs import cosine
from warmgate.models.text import TextEmbeddingModel

BACKENDS = ("torch_minilm", "onnx_minilm")


@pytest.fixture(params=BACKENDS)
def model(request: pytest.FixtureRequest) -> TextEmbeddingModel:
    loaded: TextEmbeddingModel = request.getfixturevalue(request.param)
    return loaded


def embed(model: TextEmbeddingModel, texts: list[str]) -> np.ndarray:
    (out,) = model.infer([model.prepare(texts)])
    embeddings: np.ndarray = out
    return embeddings


def test_reference_covers_empty_and_overlong_texts(
    reference: list[dict[str, Any]], torch_minilm: TextEmbeddingModel
) -> None:
    texts = [item["text"] for item in reference]
    assert "" in texts
    assert any(len(torch_minilm.tokenizer.encode([t])[0]) == 256 for t in texts if len(t) > 1000)


def test_each_text_alone_matches_reference(
    model: TextEmbeddingModel, reference: list[dict[str, Any]]
) -> None:
    for item in reference:
        (vector,) = embed(model, [item["text"]])
        assert vector.dtype == np.float32
        assert cosine(vector, np.asarray(item["embedding"])) >= 0.9999, item["text"][:40]


def test_all_texts_batched_match_reference(
    model: TextEmbeddingModel, reference: list[dict[str, Any]]
) -> None:
    vectors = embed(model, [item["text"] for item in reference])
    assert vectors.shape == (len(reference), 384)
    for vector, item in zip(vectors, reference, strict=True):
        assert cosine(vector, np.asarray(item["embedding"])) >= 0.9999, item["text"][:40]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_items_batched_together_split_back_in_order(
    model: TextEmbeddingModel, reference: list[dict[str, Any]]
) -> None:
    short = [item["text"] for item in reference if len(item["text"]) < 40]
    items = [model.prepare(short[:2]), model.prepare(short[2:3]), model.prepare(short[3:])]
    assert len({item.key for item in items}) == 1
    outputs = model.infer(items)
    assert [o.shape[0] for o in outputs] == [item.size for item in items]
    joined = np.concatenate([o for o in outputs])
    np.testing.assert_allclose(joined, embed(model, short), atol=1e-5)


def test_torch_and_onnx_agree(
    torch_minilm: TextEmbeddingModel,
    onnx_minilm: TextEmbeddingModel,
    reference: list[dict[str, Any]],
) -> None:
    texts = [item["text"] for item in reference]
    np.testing.assert_allclose(embed(torch_minilm, texts), embed(onnx_minilm, texts), atol=1e-5)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=60),
    others=st.lists(st.text(min_size=20, max_size=400), min_size=1, max_size=3),
)
def test_padding_never_changes_an_embedding(
    onnx_minilm: TextEmbeddingModel, text: str, others: list[str]
) -> None:
    """A text alone (small bucket) and batched with longer texts (padded further, more rows)
    gets the same embedding."""
    (alone,) = embed(onnx_minilm, [text])
    batched = embed(onnx_minilm, [*others, text])
    np.testing.assert_allclose(batched[-1], alone, atol=2e-5)


@pytest.mark.parametrize("rows", [1, 3])
def test_padding_invariance_on_torch(torch_minilm: TextEmbeddingModel, rows: int) -> None:
    text = "recommend a manga"
    longer = ["a much longer request about seinen manga and its history " * 3] * rows
    (alone,) = embed(torch_minilm, [text])
    np.testing.assert_allclose(embed(torch_minilm, [*longer, text])[-1], alone, atol=2e-5)
