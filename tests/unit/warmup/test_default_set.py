"""The default prompt set ships as package data and covers the traffic shapes of a manga/anime
recommendation service: short intents, medium requests, long multi-turn sessions (some past the
256-token limit) and batches of 4, 8, 16 and 32 texts."""

from __future__ import annotations

import json

from warmgate.warmup.promptset import PromptLine, default_prompt_set


def texts(line: PromptLine) -> list[str]:
    if line.content_type == "text/plain":
        return [line.body.decode()]
    value = json.loads(line.body)
    assert isinstance(value, dict) and set(value) == {"inputs"}
    assert isinstance(value["inputs"], list)
    return [str(t) for t in value["inputs"]]


def test_default_set_loads_from_package_data() -> None:
    lines = default_prompt_set()
    assert len(lines) >= 10
    assert len({line.name for line in lines}) == len(lines)
    assert {line.content_type for line in lines} == {"application/json", "text/plain"}
    assert all(line.expect_status == 200 and line.repeat >= 1 for line in lines)


def test_default_set_covers_short_medium_long_and_batch_shapes() -> None:
    singles = [texts(line)[0] for line in default_prompt_set() if len(texts(line)) == 1]
    words = [len(t.split()) for t in singles]
    assert any(n <= 6 for n in words), "short intent queries"
    assert any(15 <= n <= 100 for n in words), "medium recommendation requests"
    # Every word is at least one token, so > 256 words is > 256 tokens: the truncation path.
    assert any(n > 256 for n in words), "long multi-turn sessions past the token limit"
    assert any(t.startswith("user:") and "assistant:" in t for t in singles), "multi-turn"
    assert "recommend a manga" in singles


def test_default_set_has_every_batch_size_and_plain_text() -> None:
    lines = default_prompt_set()
    batch_sizes = {len(texts(line)) for line in lines}
    assert {1, 4, 8, 16, 32} <= batch_sizes
    plain = [line for line in lines if line.content_type == "text/plain"]
    assert plain and all(len(texts(line)) == 1 for line in plain)
    assert any(len(line.body.split()) > 256 for line in plain)
    big = [line for line in lines if len(texts(line)) == 32]
    assert any(max(len(t.split()) for t in texts(line)) > 256 for line in big)


def test_default_set_for_a_plan_leaves_out_batches_beyond_its_max_batch() -> None:
    everything = default_prompt_set()
    planned = default_prompt_set(max_batch=16)
    assert max(len(texts(line)) for line in planned) == 16
    assert {line.name for line in everything} - {line.name for line in planned} == {
        line.name for line in everything if len(texts(line)) > 16
    }
