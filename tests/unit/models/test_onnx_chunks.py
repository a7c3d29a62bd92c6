"""A batch larger than ``run_tokens`` (rows × sequence) or ``run_scores`` (rows × sequence²) runs
as chunks of rows and gives the same embeddings."""

from __future__ import annotations

import numpy as np

from warmgate.models.text import OnnxTextModel

TEXTS = ["recommend a manga", "the weather is nice today " * 6, "warm gate", "x", "a b c d e f"]


def test_chunked_batch_equals_one_run(onnx_minilm: OnnxTextModel) -> None:
    saved = onnx_minilm.run_tokens, onnx_minilm.run_scores
    try:
        onnx_minilm.run_tokens = onnx_minilm.run_scores = 0  # never split
        runs = onnx_minilm.stats.eager_runs
        (whole,) = onnx_minilm.infer([onnx_minilm.prepare(TEXTS)])
        assert onnx_minilm.stats.eager_runs == runs + 1
        item = onnx_minilm.prepare(TEXTS)
        assert item.bucket is not None and item.bucket.batch == 8
        longest = max(len(row) for row in item.payload.rows)  # on CPU a batch runs at its own length
        onnx_minilm.run_tokens = 2 * longest  # 2 rows a run: 3 runs, no padding rows
        (chunked,) = onnx_minilm.infer([item])
        assert onnx_minilm.stats.eager_runs == runs + 1 + 3
        onnx_minilm.run_tokens, onnx_minilm.run_scores = 0, 2 * longest**2  # by attention: 2 rows
        (by_scores,) = onnx_minilm.infer([item])
        assert onnx_minilm.stats.eager_runs == runs + 1 + 3 + 3
    finally:
        onnx_minilm.run_tokens, onnx_minilm.run_scores = saved
    np.testing.assert_allclose(chunked, whole, atol=2e-5)
    np.testing.assert_allclose(by_scores, whole, atol=2e-5)


def test_a_text_embeds_the_same_alone_and_padded_beside_a_longer_one(onnx_minilm: OnnxTextModel) -> None:
    """On CPU a batch runs at its own longest text, not its bucket: padding must not matter."""
    short, long = TEXTS[0], TEXTS[1]
    (alone,) = onnx_minilm.infer([onnx_minilm.prepare([short])])
    (batched,) = onnx_minilm.infer([onnx_minilm.prepare([short, long])])
    np.testing.assert_allclose(batched[0], alone[0], atol=2e-5)
