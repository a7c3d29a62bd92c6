"""Recording traffic shapes, and turning them into a prompt set with synthetic bodies.

The server calls :meth:`ShapeRecorder.observe` once per request when recording is enabled and
serves :meth:`ShapeRecorder.snapshot` at ``GET /warmgate/shapes``. Only *shapes* are kept:
media types, a batch-size bucket and a token-length bucket with a count. Never content.

``warmgate record`` fetches that snapshot and writes :func:`prompt_set_from_snapshot`'s lines
as JSONL, so warmup follows production traffic. Synthetic bodies by content type:

* JSON (``application/json``, ``*+json``): ``{"inputs": [text, ...]}`` with ``rows`` texts;
* ``text/plain``: one text;
* JSON Lines (``application/jsonlines``, ``application/x-jsonlines``, ``application/jsonl``):
  ``rows`` lines, each a JSON string;
* ``application/x-npy``: float32 zeros of shape ``(rows, tokens)``, or ``(rows,)`` when
  ``tokens`` is 0 (for tensor payloads the server passes the sequence axis as ``tokens``, and 0
  when the input has none, so the bucketing above keeps the shape servable);
* anything else is skipped with a warning (we cannot invent a body we know nothing of).

Texts are made of common English words, one WordPiece token each, so a text built for ``t``
tokens (``t - 2`` words plus ``[CLS]``/``[SEP]``) lands in the same sequence bucket.
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from warmgate.errors import ConfigError
from warmgate.media import preferred
from warmgate.warmup.promptset import JSON_MEDIA, PromptLine

logger = logging.getLogger("warmgate.record")

SNAPSHOT_VERSION = 1
DEFAULT_MAX_KEYS = 256
DEFAULT_MAX_REPEAT = 20
_MAX_MEDIA_LEN = 80

_JSONLINES = frozenset({"application/jsonlines", "application/x-jsonlines", "application/jsonl"})
_NPY = "application/x-npy"
# Common words that are one WordPiece token each.
_WORDS = (
    "story",
    "hero",
    "sea",
    "city",
    "night",
    "sky",
    "song",
    "dream",
    "light",
    "home",
    "friend",
    "world",
    "school",
    "music",
    "game",
    "fire",
)


@dataclass(frozen=True, order=True)
class ShapeKey:
    """What one request looked like: media types and bucketed sizes."""

    content_type: str
    accept: str
    rows: int
    tokens: int


def media_type(value: str, default: str = JSON_MEDIA) -> str:
    """``"Application/JSON; charset=utf-8"`` → ``"application/json"``; the first entry of an
    Accept list; a wildcard or empty → ``default``. Bounded in length (it is client-controlled)."""
    return preferred(value, default)[:_MAX_MEDIA_LEN]


def power_of_two_at_least(n: int) -> int:
    """1, 2, 4, ... the smallest power of two >= ``n`` (0 for ``n <= 0``)."""
    return 0 if n <= 0 else 1 << (n - 1).bit_length()


def token_bucket(tokens: int, seq_buckets: Sequence[int] = ()) -> int:
    """The smallest of ``seq_buckets`` that holds ``tokens``; past the largest (or without
    buckets) the next power of two. 0 stays 0 (no sequence axis)."""
    if tokens <= 0:
        return 0
    if seq_buckets:
        i = bisect.bisect_left(seq_buckets, tokens)
        if i < len(seq_buckets):
            return seq_buckets[i]
    return power_of_two_at_least(tokens)


class ShapeRecorder:
    """Thread-safe counts per :class:`ShapeKey`, bounded to ``max_keys`` distinct keys.

    ``rows`` is bucketed to the next power of two and ``tokens`` (the longest text's token
    count) to ``seq_buckets`` (see :func:`token_bucket`). Once ``max_keys`` keys exist, requests
    of a new shape are only counted in ``dropped``.
    """

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, seq_buckets: Sequence[int] = ()) -> None:
        if max_keys < 1:
            raise ConfigError(f"a shape recorder needs max_keys >= 1, got {max_keys}")
        if list(seq_buckets) != sorted(set(seq_buckets)) or any(s < 1 for s in seq_buckets):
            raise ConfigError(f"seq_buckets must be increasing positive integers, got {seq_buckets}")
        self._max_keys = max_keys
        self._seq_buckets = tuple(seq_buckets)
        self._lock = threading.Lock()
        self._counts: dict[ShapeKey, int] = {}
        self._total = 0
        self._dropped = 0

    def observe(self, content_type: str, accept: str, rows: int, tokens: int) -> None:
        key = ShapeKey(
            media_type(content_type),
            media_type(accept),
            max(1, power_of_two_at_least(rows)),
            token_bucket(tokens, self._seq_buckets),
        )
        with self._lock:
            self._total += 1
            if key in self._counts:
                self._counts[key] += 1
            elif len(self._counts) < self._max_keys:
                self._counts[key] = 1
            else:
                self._dropped += 1

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable counts, most frequent shape first."""
        with self._lock:
            counts = dict(self._counts)
            total, dropped = self._total, self._dropped
        shapes = [
            {
                "content_type": k.content_type,
                "accept": k.accept,
                "rows": k.rows,
                "tokens": k.tokens,
                "count": n,
            }
            for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        return {
            "version": SNAPSHOT_VERSION,
            "total": total,
            "dropped": dropped,
            "max_keys": self._max_keys,
            "seq_buckets": list(self._seq_buckets),
            "shapes": shapes,
        }


def prompt_set_from_snapshot(
    snapshot: Mapping[str, Any], max_repeat: int = DEFAULT_MAX_REPEAT
) -> list[PromptLine]:
    """One prompt line per recorded shape with a synthetic body of that shape; ``repeat`` is
    proportional to the shape's count (the most frequent gets ``max_repeat``, every shape at
    least 1). Shapes whose content type we cannot synthesise are skipped with a warning."""
    if max_repeat < 1:
        raise ConfigError(f"max_repeat must be >= 1, got {max_repeat}")
    shapes = _parse_snapshot(snapshot)
    top = max((n for _, n in shapes), default=1)
    lines: list[PromptLine] = []
    used: set[str] = set()
    for key, count in shapes:
        body = synthetic_body(key.content_type, key.rows, key.tokens)
        if body is None:
            logger.warning(
                "skipping recorded shape %s x%d: no synthetic body for content type %r",
                key,
                count,
                key.content_type,
            )
            continue
        repeat = min(max_repeat, max(1, round(max_repeat * count / top)))
        name = _unique(_shape_name(key), used)
        lines.append(PromptLine(name, body, key.content_type, key.accept, repeat))
    return lines


def synthetic_body(content_type: str, rows: int, tokens: int) -> bytes | None:
    """A body of ``rows`` texts of about ``tokens`` tokens (or a zeros tensor), or None when
    ``content_type`` is not one we know how to build."""
    media = media_type(content_type)
    rows = max(1, rows)
    if media == _NPY:
        buf = io.BytesIO()
        shape = (rows, tokens) if tokens > 0 else (rows,)
        np.save(buf, np.zeros(shape, dtype=np.float32), allow_pickle=False)
        return buf.getvalue()
    text = synthetic_text(tokens)
    if media == JSON_MEDIA or media.endswith("+json"):
        return json.dumps({"inputs": [text] * rows}, separators=(",", ":")).encode()
    if media == "text/plain":
        return text.encode()
    if media in _JSONLINES:
        return "".join(json.dumps(text) + "\n" for _ in range(rows)).encode()
    return None


def synthetic_text(tokens: int) -> str:
    """Common words, ``tokens - 2`` of them (at least one): about ``tokens`` tokens with the
    tokenizer's two special tokens."""
    n = max(1, tokens - 2)
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(n))


def _parse_snapshot(snapshot: Mapping[str, Any]) -> list[tuple[ShapeKey, int]]:
    version = snapshot.get("version")
    if version != SNAPSHOT_VERSION:
        raise ConfigError(f"shape snapshot: unsupported version {version!r}, expected 1")
    raw = snapshot.get("shapes")
    if not isinstance(raw, list):
        raise ConfigError("shape snapshot: 'shapes' must be a list")
    out: list[tuple[ShapeKey, int]] = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ConfigError(f"shape snapshot: shapes[{i}] must be an object")
        ints = {f: entry.get(f) for f in ("rows", "tokens", "count")}
        strs = {f: entry.get(f) for f in ("content_type", "accept")}
        for f, v in ints.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(f"shape snapshot: shapes[{i}].{f} must be an integer >= 0")
        for f, v in strs.items():
            if not isinstance(v, str):
                raise ConfigError(f"shape snapshot: shapes[{i}].{f} must be a string")
        key = ShapeKey(
            media_type(entry["content_type"]),
            media_type(entry["accept"]),
            max(1, entry["rows"]),
            entry["tokens"],
        )
        if entry["count"] > 0:
            out.append((key, entry["count"]))
    return out


def _shape_name(key: ShapeKey) -> str:
    kind = key.content_type.rsplit("/", 1)[-1].removeprefix("x-")
    name = f"recorded-{kind}-b{key.rows}"
    return f"{name}-t{key.tokens}" if key.tokens else name


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}-{n}", n + 1
    used.add(candidate)
    return candidate
