"""WARMGATE_MODEL_URI: archives unpacked atomically and safely; s3:// through boto3 (moto)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from warmgate.config import load_config
from warmgate.errors import ModelLoadError
from warmgate.models.loader import resolve_model_dir
from warmgate.models.source import MARKER, materialize

FILES = {"model.onnx": b"onnx-bytes" * 100, "tokenizer.json": b"{}", "warmup/a.jsonl": b"{}\n"}


def make_archive(path: Path, files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_plain_path_archive_is_unpacked_under_a_named_folder(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "store" / "emb-v3" / "model.tar.gz", FILES)
    messages: list[str] = []
    model_dir = materialize(str(archive), tmp_path / "cache", messages.append)
    assert model_dir.name == "emb-v3"
    assert model_dir.parent.parent == tmp_path / "cache"
    for name, data in FILES.items():
        assert (model_dir / name).read_bytes() == data
    assert any("unpacked" in m for m in messages)


def test_file_uri_archive_is_reused_when_unchanged(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "emb" / "model.tar.gz", FILES)
    first = materialize(archive.as_uri(), tmp_path / "cache", lambda _m: None)
    (first / "model.onnx").write_bytes(b"touched")  # a reuse keeps it; a re-unpack would not
    messages: list[str] = []
    assert materialize(archive.as_uri(), tmp_path / "cache", messages.append) == first
    assert (first / "model.onnx").read_bytes() == b"touched"
    assert any("already unpacked" in m for m in messages)

    make_archive(archive, {**FILES, "model.onnx": b"v2"})  # a new archive replaces it
    again = materialize(archive.as_uri(), tmp_path / "cache", lambda _m: None)
    assert (again / "model.onnx").read_bytes() == b"v2"
    assert sorted(p.name for p in again.parent.iterdir()) == ["emb"]  # nothing aside left


def test_directory_is_served_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert materialize(str(tmp_path / "m"), tmp_path / "cache", lambda _m: None) == tmp_path / "m"
    assert materialize((tmp_path / "m").as_uri(), tmp_path / "cache", lambda _m: None) == tmp_path / "m"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (member("../evil.txt"), "escapes the model folder"),
        (member("sub/../../evil.txt"), "escapes the model folder"),
        (member("/etc/evil.txt"), "absolute path"),
        (member("link", tarfile.SYMTYPE, "/etc/passwd"), "holds a link"),
        (member("hard", tarfile.LNKTYPE, "model.onnx"), "holds a link"),
        (member("fifo", tarfile.FIFOTYPE), "not a file or folder"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(
    tmp_path: Path, bad: tarfile.TarInfo, reason: str
) -> None:
    archive = make_archive(tmp_path / "emb" / "model.tar.gz", FILES, [bad])
    cache = tmp_path / "cache"
    with pytest.raises(ModelLoadError, match=reason):
        materialize(str(archive), cache, lambda _m: None)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    assert not (tmp_path / "evil.txt").exists()


def test_truncated_archive_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    big = {"model.onnx": bytes(range(256)) * 4096, "tokenizer.json": b"{}"}
    archive = make_archive(tmp_path / "emb" / "model.tar.gz", big)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="damaged or truncated"):
        materialize(str(archive), tmp_path / "cache", lambda _m: None)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_not_gzip_is_a_clear_error(tmp_path: Path) -> None:
    plain = tmp_path / "emb" / "model.tar.gz"
    plain.parent.mkdir()
    with tarfile.open(plain, "w") as tar:  # an uncompressed tar under a .tar.gz name
        tar.add(plain.parent, arcname=".")
    with pytest.raises(ModelLoadError, match="not a gzip-compressed tar"):
        materialize(str(plain), tmp_path / "cache", lambda _m: None)
    assert not (tmp_path / "cache").exists()


def test_gzip_of_something_that_is_not_tar_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "emb" / "model.tar.gz"
    bogus.parent.mkdir()
    bogus.write_bytes(gzip.compress(b"this is not a tar archive" * 100))
    with pytest.raises(ModelLoadError, match="damaged or truncated"):
        materialize(str(bogus), tmp_path / "cache", lambda _m: None)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_missing_path_and_unknown_scheme(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        materialize(str(tmp_path / "nope.tar.gz"), tmp_path / "cache", lambda _m: None)
    with pytest.raises(ModelLoadError, match="unsupported scheme 'gs'"):
        materialize("gs://b/model.tar.gz", tmp_path / "cache", lambda _m: None)


def test_resolve_model_dir_prefers_the_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARMGATE_CACHE", str(tmp_path / "cache"))
    archive = make_archive(tmp_path / "emb" / "model.tar.gz", FILES)
    (tmp_path / "dir").mkdir()
    env = {"WARMGATE_MODEL_DIR": str(tmp_path / "dir"), "WARMGATE_MODEL_URI": archive.as_uri()}
    config = load_config(env=env)
    messages: list[str] = []
    model_dir = resolve_model_dir(config, messages.append)
    assert model_dir.is_relative_to(tmp_path / "cache")
    assert (model_dir / "model.onnx").read_bytes() == FILES["model.onnx"]
    assert messages[0].startswith("fetching the model from file://")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield client


def test_s3_archive_is_downloaded_with_progress_and_unpacked(s3: object, tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "upload" / "model.tar.gz", FILES)
    s3.upload_file(str(archive), "models", "emb-v3/model.tar.gz")  # type: ignore[attr-defined]
    messages: list[str] = []
    model_dir = materialize("s3://models/emb-v3/model.tar.gz", tmp_path / "cache", messages.append)
    assert model_dir.name == "emb-v3"
    assert (model_dir / "tokenizer.json").read_bytes() == b"{}"
    assert any(m.startswith("downloading s3://models/emb-v3/model.tar.gz: 100%") for m in messages)
    assert (model_dir / MARKER).is_file()
    # the temporary download is gone: only the model's folder is in the cache
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [model_dir.parent.name]
    again: list[str] = []
    assert materialize("s3://models/emb-v3/model.tar.gz", tmp_path / "cache", again.append) == model_dir
    assert any("already unpacked" in m for m in again)


def test_s3_missing_object_names_the_uri(s3: object, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"s3://models/none/model.tar.gz.*S3 refused"):
        materialize("s3://models/none/model.tar.gz", tmp_path / "cache", lambda _m: None)
    with pytest.raises(ModelLoadError, match="expected s3://BUCKET/KEY"):
        materialize("s3://models/", tmp_path / "cache", lambda _m: None)


def test_unwritable_cache_names_warmgate_cache(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "emb" / "model.tar.gz", FILES)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    with pytest.raises(ModelLoadError, match=r"cannot write to the model cache.*WARMGATE_CACHE"):
        materialize(str(archive), tmp_path / "cache", lambda _m: None)
