"""Structured logs: WARMGATE_LOG_FORMAT=json gives one JSON object a line with the extra fields."""

from __future__ import annotations

import io
import json
import logging

from warmgate.config import LogFormat
from warmgate.logs import JsonFormatter, configure_logging


def test_json_lines_carry_message_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("warmgate.test.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    log.info("phase %s -> %s", "warming", "ready", extra={"phase_to": "ready", "seconds": 1.5})
    doc = json.loads(stream.getvalue())
    assert doc["message"] == "phase warming -> ready"
    assert doc["level"] == "info" and doc["logger"] == "warmgate.test.json"
    assert doc["phase_to"] == "ready" and doc["seconds"] == 1.5
    assert doc["time"].endswith("Z")


def test_configure_logging_installs_one_stdout_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(LogFormat.JSON)
        assert len(root.handlers) == 1
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        configure_logging(LogFormat.TEXT)
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
