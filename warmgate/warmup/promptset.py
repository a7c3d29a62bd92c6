"""Warmup prompt sets: the JSONL file warmup drives, ``warmgate replay`` sends and
``warmgate record`` writes (DESIGN §4).

One request a line, blank lines skipped::

    {"name": "short-intent", "body": {"inputs": ["recommend a manga"]}, "repeat": 3}
    {"name": "plain", "body": "a quiet slice-of-life story", "content_type": "text/plain"}
    {"name": "tensor", "body_file": "bodies/x.npy", "content_type": "application/x-npy"}
    {"name": "bad-json", "body": "{not json", "expect_status": 400}

Fields: ``name`` (required, unique), exactly one of ``body`` / ``body_file``, ``content_type``
and ``accept`` (both default ``application/json``), ``repeat`` (int >= 1, default 1),
``expect_status`` (HTTP status, default 200).

How ``body`` becomes bytes: an object or array is sent as compact JSON; a **string is sent
as-is** (UTF-8), whatever the content type: ``text/plain`` text, a JSON document you want
byte-exact, or a deliberately malformed body paired with ``expect_status``. To send the JSON
string literal ``"hi"``, write ``"body": "\\"hi\\""``. Numbers, booleans and null are sent as
JSON. ``body_file`` is read as raw bytes, relative to the ``.jsonl`` file's folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from warmgate.errors import ConfigError
from warmgate.models.base import SyntheticRequest

JSON_MEDIA = "application/json"
DEFAULT_SET = "default.jsonl"

_FIELDS = ("name", "body", "body_file", "content_type", "accept", "repeat", "expect_status")


@dataclass(frozen=True)
class PromptLine:
    """One request of a prompt set, its body already resolved to bytes."""

    name: str
    body: bytes
    content_type: str = JSON_MEDIA
    accept: str = JSON_MEDIA
    repeat: int = 1
    expect_status: int = 200

    def to_synthetic(self) -> SyntheticRequest:
        """The same request in the form the warmup runner sends through the server's path."""
        return SyntheticRequest(self.name, self.body, self.content_type, self.accept)


def load_prompt_set(path: str | Path) -> list[PromptLine]:
    """Parse and validate one JSONL prompt set; every problem is a ``ConfigError`` that names
    the file, the line number and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt set not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: prompt set is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read prompt set ({e.strerror or e})") from None

    lines: list[PromptLine] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(text.split("\n"), start=1):  # JSONL: only \n ends a line
        if not raw.strip():
            continue
        line = _parse_line(raw, path, lineno)
        if line.name in seen:
            raise ConfigError(
                f"{path}:{lineno}: field 'name': {line.name!r} is already used on line "
                f"{seen[line.name]}; names must be unique within a set"
            )
        seen[line.name] = lineno
        lines.append(line)
    if not lines:
        raise ConfigError(f"{path}: prompt set contains no requests")
    return lines


def load_prompt_sets(paths: Iterable[str | Path]) -> list[PromptLine]:
    """Load several sets in order into one list; a name used in two files is an error."""
    out: list[PromptLine] = []
    owner: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        for line in load_prompt_set(path):
            if line.name in owner:
                raise ConfigError(
                    f"{path}: field 'name': {line.name!r} is already defined in "
                    f"{owner[line.name]}; names must be unique across prompt sets"
                )
            owner[line.name] = path
            out.append(line)
    return out


@contextmanager
def default_set_path() -> Iterator[Path]:
    """The shipped ``sets/default.jsonl`` as a file path, valid inside the ``with`` block."""
    ref = resources.files("warmgate.warmup").joinpath("sets").joinpath(DEFAULT_SET)
    with resources.as_file(ref) as path:
        yield path


def default_prompt_set(max_batch: int | None = None) -> list[PromptLine]:
    """The set shipped for the default model (all-MiniLM-L6-v2 text embeddings).

    With ``max_batch`` (the model's bucket plan), lines of more texts than that are left out:
    warmup then warms the plan, and a batch the plan does not cover is not a shape to keep warm
    (it runs unbucketed, as any request beyond the plan does)."""
    with default_set_path() as path:
        lines = load_prompt_set(path)
    if max_batch is None:
        return lines
    return [line for line in lines if text_count(line) <= max_batch]


def text_count(line: PromptLine) -> int:
    """How many texts a line's body carries: the length of a JSON ``inputs`` list, else one."""
    if line.content_type != JSON_MEDIA:
        return 1
    try:
        value = json.loads(line.body)
    except ValueError:
        return 1
    inputs = value.get("inputs") if isinstance(value, dict) else None
    return len(inputs) if isinstance(inputs, list) else 1


def dump_prompt_set(lines: Sequence[PromptLine], path: str | Path) -> None:
    """Write ``lines`` so that ``load_prompt_set(path)`` gives them back byte for byte.

    Bodies that are canonical compact JSON objects/arrays are written as ``body`` objects,
    other UTF-8 bodies as ``body`` strings, and binary bodies into ``<stem>.bodies/`` next to
    the file, referenced by ``body_file``. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [line.name for line in lines]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"{path}: cannot write a prompt set with duplicate names: {dup}")
    bodies_dir = path.parent / f"{path.stem}.bodies"
    out: list[str] = []
    for i, line in enumerate(lines):
        record: dict[str, Any] = {"name": line.name}
        body = _as_body_value(line.body)
        if body is None:
            bodies_dir.mkdir(parents=True, exist_ok=True)
            file = bodies_dir / f"{i:04d}-{_safe_filename(line.name)}.bin"
            file.write_bytes(line.body)
            record["body_file"] = file.relative_to(path.parent).as_posix()
        else:
            record["body"] = body
        if line.content_type != JSON_MEDIA:
            record["content_type"] = line.content_type
        if line.accept != JSON_MEDIA:
            record["accept"] = line.accept
        if line.repeat != 1:
            record["repeat"] = line.repeat
        if line.expect_status != 200:
            record["expect_status"] = line.expect_status
        out.append(json.dumps(record, ensure_ascii=False))
    path.write_text("".join(s + "\n" for s in out), encoding="utf-8")


def encode_body(value: Any) -> bytes:
    """The bytes a ``body`` value is sent as (see the module docstring)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return _compact_json(value).encode("utf-8")


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_body_value(body: bytes) -> Any | None:
    """A JSON value that ``encode_body`` turns back into exactly ``body``, or None (binary)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, dict | list) and _compact_json(parsed) == text:
        return parsed
    return text


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:60] or "body"


def _parse_line(raw: str, path: Path, lineno: int) -> PromptLine:
    where = f"{path}:{lineno}"
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {_json_type(obj)}")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: field {unknown[0]!r}: unknown field; allowed fields are {', '.join(_FIELDS)}"
        )

    if "name" not in obj:
        raise ConfigError(f"{where}: field 'name': required")
    name = _string(obj, "name", where)

    has_body, has_file = "body" in obj, "body_file" in obj
    if has_body == has_file:
        which = "both were given" if has_body else "neither was given"
        raise ConfigError(f"{where}: field 'body': give exactly one of 'body' or 'body_file'; {which}")
    if has_body:
        body = encode_body(obj["body"])
    else:
        body = _read_body_file(_string(obj, "body_file", where), path, where)

    return PromptLine(
        name=name,
        body=body,
        content_type=_string(obj, "content_type", where, JSON_MEDIA),
        accept=_string(obj, "accept", where, JSON_MEDIA),
        repeat=_integer(obj, "repeat", where, default=1, low=1, high=None),
        expect_status=_integer(obj, "expect_status", where, default=200, low=100, high=599),
    )


def _string(obj: dict[str, Any], field: str, where: str, default: str | None = None) -> str:
    value = obj.get(field, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: field {field!r}: expected a string, got {_json_type(value)}")
    if not value.strip():
        raise ConfigError(f"{where}: field {field!r}: must not be empty")
    return value


def _integer(obj: dict[str, Any], field: str, where: str, *, default: int, low: int, high: int | None) -> int:
    value = obj.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: field {field!r}: expected an integer, got {_json_type(value)}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{where}: field {field!r}: must be {bound}, got {value}")
    return value


def _read_body_file(rel: str, path: Path, where: str) -> bytes:
    file = path.parent / rel
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: field 'body_file': {file} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: field 'body_file': {file} is a directory") from None
    except OSError as e:
        raise ConfigError(f"{where}: field 'body_file': cannot read {file} ({e.strerror})") from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__
