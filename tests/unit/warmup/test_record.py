from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from warmgate.errors import ConfigError
from warmgate.warmup.promptset import dump_prompt_set, load_prompt_set
from warmgate.warmup.record import (
    ShapeRecorder,
    media_type,
    prompt_set_from_snapshot,
    synthetic_body,
    token_bucket,
)

SEQ = (16, 32, 64, 128, 256)


def test_token_bucket_uses_seq_buckets_then_powers_of_two() -> None:
    assert token_bucket(0, SEQ) == 0
    assert [token_bucket(n, SEQ) for n in (1, 16, 17, 200, 256)] == [16, 16, 32, 256, 256]
    assert token_bucket(300, SEQ) == 512
    assert [token_bucket(n) for n in (1, 3, 4, 5, 1000)] == [1, 4, 4, 8, 1024]


def test_media_types_are_normalised() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type("application/x-npy, application/json;q=0.5") == "application/x-npy"
    assert media_type("*/*") == "application/json"
    assert media_type("") == "application/json"
    assert len(media_type("x/" + "y" * 500)) <= 80


def test_observe_buckets_and_counts() -> None:
    rec = ShapeRecorder(seq_buckets=SEQ)
    rec.observe("application/json", "*/*", 3, 20)
    rec.observe("application/json; charset=utf-8", "application/json", 4, 30)
    rec.observe("text/plain", "application/json", 1, 5)
    snap = rec.snapshot()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["total"] == 3 and snap["dropped"] == 0
    assert snap["shapes"] == [
        {"content_type": "application/json", "accept": "application/json", "rows": 4,
         "tokens": 32, "count": 2},
        {"content_type": "text/plain", "accept": "application/json", "rows": 1,
         "tokens": 16, "count": 1},
    ]  # fmt: skip


def test_thread_safe_under_many_threads() -> None:
    rec = ShapeRecorder(seq_buckets=SEQ)
    threads, per_thread = 16, 500
    barrier = threading.Barrier(threads)

    def hammer(i: int) -> None:
        barrier.wait()
        for j in range(per_thread):
            rec.observe("application/json", "application/json", 1 + (i + j) % 8, 1 + j % 300)

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    snap = rec.snapshot()
    assert snap["total"] == threads * per_thread
    assert sum(s["count"] for s in snap["shapes"]) + snap["dropped"] == threads * per_thread
    assert snap["dropped"] == 0


def test_keys_are_bounded() -> None:
    rec = ShapeRecorder(max_keys=5)
    for i in range(100):
        rec.observe(f"application/x-type-{i}", "application/json", 1, 0)
    rec.observe("application/x-type-0", "application/json", 1, 0)
    snap = rec.snapshot()
    assert len(snap["shapes"]) == 5
    assert snap["dropped"] == 95 and snap["total"] == 101
    with pytest.raises(ConfigError):
        ShapeRecorder(max_keys=0)
    with pytest.raises(ConfigError):
        ShapeRecorder(seq_buckets=(32, 16))


def test_snapshot_to_prompt_set_keeps_shapes_and_never_content(tmp_path: Path) -> None:
    rec = ShapeRecorder(seq_buckets=SEQ)
    observed = {  # (content type, rows, tokens) -> how often
        ("application/json", 1, 10): 40,
        ("application/json", 8, 100): 20,
        ("text/plain", 1, 300): 2,
        ("application/jsonlines", 4, 30): 1,
    }
    for (ct, rows, tokens), n in observed.items():
        for _ in range(n):
            rec.observe(ct, "application/json", rows, tokens)
    snap = rec.snapshot()
    lines = prompt_set_from_snapshot(snap, max_repeat=10)

    assert len(lines) == len(snap["shapes"]) == 4
    assert [line.repeat for line in lines] == [10, 5, 1, 1]
    assert len(json.loads(lines[0].body)["inputs"]) == 1
    assert len(json.loads(lines[1].body)["inputs"]) == 8

    # Each synthetic body, observed again, lands in the same recorded shape.
    again = ShapeRecorder(seq_buckets=SEQ)
    for line in lines:
        if line.content_type == "text/plain":
            texts = [line.body.decode()]
        elif line.content_type == "application/jsonlines":
            texts = [json.loads(s) for s in line.body.decode().splitlines()]
        else:
            texts = json.loads(line.body)["inputs"]
        tokens = max(len(t.split()) for t in texts) + 2
        again.observe(line.content_type, line.accept, len(texts), tokens)

    def shapes(snapshot: dict[str, Any]) -> set[tuple[str, int, int]]:
        return {(s["content_type"], s["rows"], s["tokens"]) for s in snapshot["shapes"]}

    assert shapes(again.snapshot()) == shapes(snap)

    path = tmp_path / "recorded.jsonl"
    dump_prompt_set(lines, path)
    assert load_prompt_set(path) == lines


def test_npy_and_unknown_content_types() -> None:
    body = synthetic_body("application/x-npy", 2, 16)
    assert body is not None
    array = np.load(io.BytesIO(body), allow_pickle=False)
    assert array.shape == (2, 16) and array.dtype == np.float32
    assert synthetic_body("image/png", 1, 0) is None
    snap = {
        "version": 1,
        "shapes": [
            {"content_type": "image/png", "accept": "application/json", "rows": 1, "tokens": 0,
             "count": 3},
        ],
    }  # fmt: skip
    assert prompt_set_from_snapshot(snap) == []


@pytest.mark.parametrize(
    "snap",
    [
        {"version": 2, "shapes": []},
        {"version": 1},
        {"version": 1, "shapes": ["x"]},
        {"version": 1, "shapes": [{"content_type": "a/b", "accept": "a/b", "rows": -1,
                                   "tokens": 0, "count": 1}]},
        {"version": 1, "shapes": [{"content_type": 1, "accept": "a/b", "rows": 1,
                                   "tokens": 0, "count": 1}]},
    ],
)  # fmt: skip
def test_malformed_snapshot_is_a_config_error(snap: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="shape snapshot"):
        prompt_set_from_snapshot(snap)
