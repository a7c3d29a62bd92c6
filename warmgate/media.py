"""Media types: the names warmgate speaks and the one parser of ``Content-Type`` / ``Accept``.

A leaf module (it imports nothing of ours): the server's codecs, the user-handler path in
``models`` and the shape recorder in ``warmup`` all parse headers here, so they agree on what
``"Application/JSON; charset=utf-8"`` means.
"""

from __future__ import annotations

JSON = "application/json"
JSONLINES = "application/jsonlines"
JSONL = "application/jsonl"  # an alias clients send; answered as JSONLINES
NPY = "application/x-npy"
NPZ = "application/x-npz"
TEXT = "text/plain"
OCTET_STREAM = "application/octet-stream"
WILDCARDS = ("*/*", "application/*")


def media_type(header: str | None) -> str:
    """The essence of one media type: ``"Application/JSON; charset=utf-8"`` → ``"application/json"``;
    ``""`` for a missing header."""
    return (header or "").split(";", 1)[0].strip().lower()


def accept_list(header: str | None) -> list[str]:
    """The media types of an ``Accept`` header in the client's order, parameters dropped."""
    return [m for m in (media_type(part) for part in (header or "").split(",")) if m]


def preferred(header: str | None, default: str = JSON) -> str:
    """The first type of an ``Accept`` list; ``default`` when it is missing or a wildcard."""
    wanted = accept_list(header)
    if not wanted or wanted[0] in WILDCARDS:
        return default
    return wanted[0]
