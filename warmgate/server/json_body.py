"""JSON bodies both ways, with numpy arrays serialised natively.

Response encoding is the per-request work the event loop pays for most (DESIGN §8); orjson
writes a float32 array about 20× faster than ``json.dumps(array.tolist())``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from warmgate.errors import BadRequest


def loads(body: bytes | memoryview) -> Any:
    """The parsed body; invalid JSON is a :class:`BadRequest` that says where."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_tolist, option=orjson.OPT_SERIALIZE_NUMPY)


def _tolist(value: Any) -> Any:
    """orjson's fallback: arrays it cannot take directly (strided views, float16, ...)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
