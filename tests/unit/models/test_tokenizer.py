"""Tokenisation: the file's own padding is off, truncation is the model's, synthetic lengths are exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from warmgate.models.text.tokenizer import TextTokenizer, pad_batch


@pytest.fixture(scope="module")
def tokenizer(minilm_dir: Path) -> TextTokenizer:
    return TextTokenizer(minilm_dir / "tokenizer.json", max_length=256)


def test_no_padding_and_truncation_at_max_length(tokenizer: TextTokenizer) -> None:
    # MiniLM's tokenizer.json pads and truncates to 128 by itself; both must be overridden.
    short, long = tokenizer.encode(["hi", "word " * 1000])
    assert short.tolist() == [101, 7632, 102]
    assert len(long) == 256
    assert long[-1] == 102


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 100, 255, 256])
def test_text_of_length_is_exact(tokenizer: TextTokenizer, n: int) -> None:
    (ids,) = tokenizer.encode([tokenizer.text_of_length(n)])
    assert len(ids) == max(n, 2)


def test_pad_batch() -> None:
    rows = [np.array([5, 6, 7]), np.array([8])]
    ids, mask = pad_batch(rows, batch=4, seq=4, pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [0] * 4, [0] * 4]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [0] * 4, [0] * 4]
