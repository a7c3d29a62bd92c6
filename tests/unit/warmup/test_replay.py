"""``warmgate replay`` / ``warmgate record`` against a real HTTP server (see conftest)."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from tests.unit.warmup.conftest import Endpoint
from warmgate.warmup.cli import add_commands, main
from warmgate.warmup.promptset import PromptLine, default_prompt_set, dump_prompt_set
from warmgate.warmup.promptset import load_prompt_set as load
from warmgate.warmup.replay import Progress, run_replay, schedule

SECRET = "my private question about a manga nobody else should read"


def write_set(tmp_path: Path, lines: list[PromptLine]) -> Path:
    path = tmp_path / "set.jsonl"
    dump_prompt_set(lines, path)
    return path


GOOD = [
    PromptLine("short", b'{"inputs":["recommend a manga"]}', repeat=3),
    PromptLine("batch-4", json.dumps({"inputs": ["a b c"] * 4}).encode(), repeat=2),
    PromptLine("plain", b"a quiet story", "text/plain"),
    PromptLine("expected-400", b"{not json", expect_status=400),
]


def test_replay_counts_every_request_per_shape(tmp_path: Path, endpoint: Endpoint) -> None:
    path = write_set(tmp_path, GOOD)
    report = run_replay(load(path), endpoint.url + "/invocations", concurrency=3, repeat=2)
    assert report.ok and report.errors == 0
    assert report.requests == 2 * (3 + 2 + 1 + 1) == len(endpoint.received)
    counts = {s.name: (s.count, s.errors) for s in report.shapes}
    assert counts == {"short": (6, 0), "batch-4": (4, 0), "plain": (2, 0), "expected-400": (2, 0)}
    for s in report.shapes:
        assert s.p50_ms is not None and s.p95_ms is not None and s.p99_ms is not None
        assert 0 < s.p50_ms <= s.p95_ms <= s.p99_ms <= (s.max_ms or 0)


def test_cli_json_report(tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_set(tmp_path, GOOD)
    status = main(["replay", str(path), "--url", endpoint.url, "--json", "--concurrency", "2"])
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["ok"] is True and report["errors"] == 0 and report["requests"] == 7
    assert [s["name"] for s in report["shapes"]] == ["short", "batch-4", "plain", "expected-400"]
    assert report["shapes"][0]["count"] == 3
    assert set(report["shapes"][0]) >= {"count", "errors", "p50_ms", "p95_ms", "p99_ms"}


def test_cli_table_and_nonzero_exit_on_forced_error(
    tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [*GOOD, PromptLine("explodes", b'{"inputs":["boom"]}', repeat=2)]
    status = main(["replay", str(write_set(tmp_path, lines)), "--url", endpoint.url])
    out = capsys.readouterr().out
    assert status == 1
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line}
    assert rows["explodes"][1:3] == ["2", "2"]  # count, errors
    assert rows["short"][1:3] == ["3", "0"]
    assert "explodes: HTTP 500, expected 200" in out


def test_cli_path_option_and_all_errors(
    tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_set(tmp_path, GOOD[:1])
    argv = ["replay", str(path), "--url", endpoint.url, "--path", "/always-500", "--json"]
    assert main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 3 and report["shapes"][0]["p99_ms"] is None


def test_cli_transport_error_is_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_set(tmp_path, GOOD[:1])
    # Port 9 (discard) on localhost: nothing listens there, the connection is refused.
    assert main(["replay", str(path), "--url", "http://127.0.0.1:9", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 3 and "ConnectError" in report["error_samples"][0]


def test_cli_p99_budget(tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(write_set(tmp_path, GOOD))
    assert main(["replay", path, "--url", endpoint.url, "--p99-ms", "0.000001", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["errors"] == 0 and report["ok"] is False
    assert sorted(report["over_budget"]) == sorted(line.name for line in GOOD)
    assert main(["replay", path, "--url", endpoint.url, "--p99-ms", "1e9"]) == 0
    assert "shapes over it: none" in capsys.readouterr().out


def test_cli_builtin_default_set(endpoint: Endpoint, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "default", "--url", endpoint.url, "--json", "--concurrency", "8"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == sum(line.repeat for line in default_prompt_set())


def test_cli_invalid_set_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"name": "a"}\n')
    assert main(["replay", str(bad), "--url", "http://127.0.0.1:9"]) == 2
    assert "bad.jsonl:1: field 'body'" in capsys.readouterr().err


def test_record_then_replay_round_trip(
    tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    traffic = [
        PromptLine("one", json.dumps({"inputs": [SECRET]}).encode(), repeat=6),
        PromptLine("eight", json.dumps({"inputs": [SECRET] * 8}).encode(), repeat=3),
        PromptLine("plain", SECRET.encode(), "text/plain"),
    ]
    assert main(["replay", str(write_set(tmp_path, traffic)), "--url", endpoint.url]) == 0
    out = tmp_path / "recorded" / "set.jsonl"
    assert main(["record", "--url", endpoint.url, "-o", str(out), "--max-repeat", "6"]) == 0
    assert "wrote 3 shapes" in capsys.readouterr().out

    recorded = load(out)
    assert SECRET.split()[2].encode() not in out.read_bytes()  # "private": never content
    assert sorted(line.repeat for line in recorded) == [1, 3, 6]
    rows = sorted(
        1 if line.content_type == "text/plain" else len(json.loads(line.body)["inputs"]) for line in recorded
    )
    assert rows == [1, 1, 8]

    before = endpoint.recorder.snapshot()["shapes"]
    endpoint.received.clear()
    assert main(["replay", str(out), "--url", endpoint.url]) == 0
    assert len(endpoint.received) == 10
    after = endpoint.recorder.snapshot()["shapes"]
    assert {(s["content_type"], s["rows"], s["tokens"]) for s in after} == {
        (s["content_type"], s["rows"], s["tokens"]) for s in before
    }
    assert sum(s["count"] for s in after) == 2 * sum(s["count"] for s in before)


def test_record_without_recording_or_shapes(
    tmp_path: Path, endpoint: Endpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "set.jsonl"
    assert main(["record", "--url", endpoint.url, "-o", str(out)]) == 1
    assert "no usable shapes" in capsys.readouterr().err
    assert main(["record", "--url", endpoint.url + "/nothing-here", "-o", str(out)]) == 1
    assert "404" in capsys.readouterr().err
    assert not out.exists()


def test_progress_bar_draws_on_a_stream() -> None:
    stream = io.StringIO()
    bar = Progress(4, stream, width=4)
    for ok in (True, False, True, True):
        bar.advance(ok)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 4
    assert text.endswith("replay [####] 4/4 (100%) errors 1\n")


def test_schedule_repeats_set_then_lines() -> None:
    a, b = PromptLine("a", b"{}", repeat=2), PromptLine("b", b"{}")
    assert [line.name for line in schedule([a, b], 2)] == ["a", "a", "b", "a", "a", "b"]


def test_add_commands_registers_both_with_funcs() -> None:
    parser = argparse.ArgumentParser(prog="warmgate")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["replay", "x.jsonl", "--url", "http://h"])
    assert callable(args.func) and args.path == "/invocations" and args.concurrency == 4
    args = parser.parse_args(["record", "--url", "http://h", "-o", "out.jsonl"])
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["replay", "x.jsonl", "--url", "http://h", "--concurrency", "0"])
