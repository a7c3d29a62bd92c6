"""/metrics reports the process's memory and what the model's load added, in bytes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import serving
from tests.unit.models.bert_dirs import write_bert_dir
from warmgate.models.memory import rss_bytes


def _value(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_memory_metrics(tmp_path: Path) -> None:
    model_dir = write_bert_dir(tmp_path / "tiny", None)
    with serving(model_dir, backend="torch", max_batch="2", seq_lens="16") as client:
        assert client.get("/readyz").json()["phase"] == "ready"
        text = client.get("/metrics").text
    rss = _value(text, "process_resident_memory_bytes")
    peak = _value(text, "warmgate_process_peak_resident_memory_bytes")
    model = _value(text, "warmgate_model_memory_bytes")
    assert 0.5 * rss_bytes() < rss <= peak  # the in-process app: this very process
    assert 0 <= model < peak  # a tiny model in a process that already holds torch may add ~0
