from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warmgate.errors import ConfigError
from warmgate.warmup.promptset import (
    PromptLine,
    dump_prompt_set,
    encode_body,
    load_prompt_set,
    load_prompt_sets,
)


def write(tmp_path: Path, *lines: str, name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_good_file_with_every_field_and_blank_lines(tmp_path: Path) -> None:
    (tmp_path / "bodies").mkdir()
    (tmp_path / "bodies" / "x.bin").write_bytes(b"\x93NUMPY\x00\xff")
    path = write(
        tmp_path,
        '{"name": "json", "body": {"inputs": ["recommend a manga"]}, "repeat": 3}',
        "",
        "   ",
        '{"name": "plain", "body": "a quiet story", "content_type": "text/plain",'
        ' "accept": "application/x-npy"}',
        '{"name": "file", "body_file": "bodies/x.bin", "content_type": "application/x-npy"}',
        '{"name": "bad", "body": "{not json", "expect_status": 400}',
        '{"name": "array", "body": [1, 2]}',
        '{"name": "number", "body": 7}',
    )
    lines = load_prompt_set(path)
    assert lines == [
        PromptLine("json", b'{"inputs":["recommend a manga"]}', repeat=3),
        PromptLine("plain", b"a quiet story", "text/plain", "application/x-npy"),
        PromptLine("file", b"\x93NUMPY\x00\xff", "application/x-npy"),
        PromptLine("bad", b"{not json", expect_status=400),
        PromptLine("array", b"[1,2]"),
        PromptLine("number", b"7"),
    ]
    assert lines[0].to_synthetic().body == lines[0].body


def test_string_body_is_sent_as_is_even_for_json() -> None:
    assert encode_body('{"inputs": "x"}') == b'{"inputs": "x"}'
    assert encode_body("na\u00efve") == "na\u00efve".encode()
    assert encode_body({"inputs": ["na\u00efve"]}) == '{"inputs":["na\u00efve"]}'.encode()


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("{not json", None, "not valid JSON"),
        ('["a list"]', None, "expected a JSON object"),
        ('{"name": "a", "body": {}, "colour": "red"}', "colour", "unknown field"),
        ('{"body": {}}', "name", "required"),
        ('{"name": 3, "body": {}}', "name", "expected a string"),
        ('{"name": "", "body": {}}', "name", "must not be empty"),
        ('{"name": "a"}', "body", "neither was given"),
        ('{"name": "a", "body": {}, "body_file": "x"}', "body", "both were given"),
        ('{"name": "a", "body_file": 5}', "body_file", "expected a string"),
        ('{"name": "a", "body_file": "missing.bin"}', "body_file", "does not exist"),
        ('{"name": "a", "body": {}, "content_type": 1}', "content_type", "expected a string"),
        ('{"name": "a", "body": {}, "accept": null}', "accept", "expected a string"),
        ('{"name": "a", "body": {}, "repeat": 0}', "repeat", "must be >= 1"),
        ('{"name": "a", "body": {}, "repeat": "2"}', "repeat", "expected an integer"),
        ('{"name": "a", "body": {}, "repeat": 1.5}', "repeat", "expected an integer"),
        ('{"name": "a", "body": {}, "repeat": true}', "repeat", "expected an integer"),
        ('{"name": "a", "body": {}, "expect_status": 99}', "expect_status", "between 100 and 599"),
        ('{"name": "a", "body": {}, "expect_status": "200"}', "expect_status", "expected an"),
    ],
)
def test_bad_line_names_file_line_and_field(tmp_path: Path, line: str, field: str | None, words: str) -> None:
    path = write(tmp_path, '{"name": "ok", "body": {}}', "", line)
    with pytest.raises(ConfigError) as info:
        load_prompt_set(path)
    message = info.value.message
    assert message.startswith(f"{path}:3: ")
    assert words in message
    if field is not None:
        assert f"field '{field}'" in message


def test_body_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    path = write(tmp_path, '{"name": "a", "body_file": "dir"}')
    with pytest.raises(ConfigError, match=r"set\.jsonl:1: field 'body_file': .* is a directory"):
        load_prompt_set(path)


def test_duplicate_name_in_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, '{"name": "a", "body": {}}', '{"name": "a", "body": []}')
    with pytest.raises(ConfigError, match=r":2: field 'name': 'a' is already used on line 1"):
        load_prompt_set(path)


def test_duplicate_name_across_files(tmp_path: Path) -> None:
    one = write(tmp_path, '{"name": "a", "body": {}}', name="one.jsonl")
    two = write(tmp_path, '{"name": "b", "body": {}}', '{"name": "a", "body": {}}', name="two.jsonl")
    with pytest.raises(ConfigError, match=r"two\.jsonl: field 'name': 'a' .*/one\.jsonl"):
        load_prompt_sets([one, two])
    three = write(tmp_path, '{"name": "c", "body": {}}', name="three.jsonl")
    assert [line.name for line in load_prompt_sets([one, three])] == ["a", "c"]


def test_missing_empty_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_prompt_set(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigError, match="contains no requests"):
        load_prompt_set(write(tmp_path, "", "  "))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(b'{"name": "caf\xe9", "body": {}}\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_prompt_set(bad)


def test_dump_then_load_round_trips_byte_for_byte(tmp_path: Path) -> None:
    lines = [
        PromptLine("compact-json", b'{"inputs":["a","b"]}', repeat=4),
        PromptLine("spaced-json", b'{"inputs": ["kept as written"]}'),
        PromptLine("plain", "caf\u00e9 au lait".encode(), "text/plain", "text/csv"),
        PromptLine("binary/odd name", b"\x00\x01\xfe\xff", "application/x-npy"),
        PromptLine("bad", b"{nope", expect_status=400),
        PromptLine("string-literal", b'"hello"'),
    ]
    path = tmp_path / "out" / "recorded.jsonl"  # the folder is created
    dump_prompt_set(lines, path)
    assert load_prompt_set(path) == lines
    records = [json.loads(s) for s in path.read_text().splitlines()]
    assert records[0] == {"name": "compact-json", "body": {"inputs": ["a", "b"]}, "repeat": 4}
    assert records[3]["body_file"].startswith("recorded.bodies/")
    assert "body" not in records[3]


def test_dump_refuses_duplicate_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate names"):
        dump_prompt_set([PromptLine("a", b"{}"), PromptLine("a", b"[]")], tmp_path / "x.jsonl")


names = st.text(min_size=1, max_size=20).filter(lambda s: s.strip() != "")
media = st.sampled_from(["application/json", "text/plain", "application/x-npy", "text/csv"])
bodies = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
        max_leaves=10,
    ).map(lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()),
)
prompt_lines = st.builds(
    PromptLine,
    name=names,
    body=bodies,
    content_type=media,
    accept=media,
    repeat=st.integers(1, 50),
    expect_status=st.integers(100, 599),
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(prompt_lines, min_size=1, max_size=6, unique_by=lambda line: line.name))
def test_any_prompt_set_round_trips(
    tmp_path_factory: pytest.TempPathFactory, lines: list[PromptLine]
) -> None:
    path = tmp_path_factory.mktemp("rt") / "set.jsonl"
    dump_prompt_set(lines, path)
    assert load_prompt_set(path) == lines
