"""A model from where users keep it: ``WARMGATE_MODEL_URI``.

* ``s3://bucket/key/model.tar.gz``: downloaded with boto3 (``pip install 'warmgate[s3]'``);
* ``file:///path`` or a plain path to a ``model.tar.gz``: unpacked;
* ``file:///path`` or a plain path to a directory: served where it is.

SageMaker unpacks ``model.tar.gz`` into ``/opt/ml/model`` itself; ECS and Kubernetes do not, so this
module does it during LOADING, reporting progress through the runtime's callback (the lifecycle
reason that ``/ping`` and ``/readyz`` show).

An archive lands in ``<cache root>/uri-<hash of the URI>/<name>`` where ``<name>`` is the archive's
folder (``s3://b/emb-v3/model.tar.gz`` → ``emb-v3``), so the served model keeps a meaningful name.
Unpacking is atomic: members go to a sibling staging folder that is renamed into place only when
the whole archive has been read, and a failure removes it. Only regular files and folders are
accepted; an absolute path, a ``..`` component, a link or a device file is refused, as is a file
that is not gzip or an archive cut short. A complete unpacking records where it came from
(``.warmgate-source``), so a restart with the same archive reuses it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlparse

from warmgate.errors import ModelLoadError

Progress = Callable[[str], None]

GZIP_MAGIC = b"\x1f\x8b"
MARKER = ".warmgate-source"
_CHUNK = 1 << 20


def materialize(uri: str, cache_root: Path, progress: Progress) -> Path:
    """The model directory that ``uri`` names, fetched and unpacked into ``cache_root`` if needed.

    Raises :class:`ModelLoadError` with a reason that names the URI and what was wrong.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return _from_s3(uri, parsed.netloc, parsed.path.lstrip("/"), cache_root, progress)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri).expanduser()
    else:
        raise ModelLoadError(
            f"WARMGATE_MODEL_URI {uri!r}: unsupported scheme {parsed.scheme!r}; use s3://, file:// or a path"
        )
    if path.is_dir():
        return path
    if not path.is_file():
        raise ModelLoadError(f"WARMGATE_MODEL_URI {uri!r}: {path} does not exist")
    stat = path.stat()
    identity = {"uri": uri, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    dest = _dest_for(uri, path.parent.name, cache_root)
    if _is_current(dest, identity):
        progress(f"model from {uri} already unpacked in {dest}")
        return dest
    with path.open("rb") as archive:
        return unpack_archive(archive, dest, identity, progress, label=uri)


def _from_s3(uri: str, bucket: str, key: str, cache_root: Path, progress: Progress) -> Path:
    if not bucket or not key or key.endswith("/"):
        raise ModelLoadError(f"WARMGATE_MODEL_URI {uri!r}: expected s3://BUCKET/KEY of a model.tar.gz")
    try:
        import boto3
        import botocore.exceptions
    except ImportError as exc:
        raise ModelLoadError(f"WARMGATE_MODEL_URI {uri!r} needs boto3: pip install 'warmgate[s3]'") from exc
    s3 = boto3.client("s3")
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        size = int(head["ContentLength"])
        identity = {"uri": uri, "size": size, "etag": str(head.get("ETag", ""))}
        dest = _dest_for(uri, PurePosixPath(key).parent.name or bucket, cache_root)
        if _is_current(dest, identity):
            progress(f"model from {uri} already unpacked in {dest}")
            return dest
        _make_cache_dir(cache_root, uri)
        with tempfile.TemporaryFile(dir=cache_root) as spool:
            report = _ByteProgress(f"downloading {uri}", size, progress)
            s3.download_fileobj(bucket, key, spool, Callback=report)
            spool.seek(0)
            return unpack_archive(spool, dest, identity, progress, label=uri)
    except botocore.exceptions.ClientError as exc:
        raise ModelLoadError(f"WARMGATE_MODEL_URI {uri!r}: S3 refused: {exc}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise ModelLoadError(f"WARMGATE_MODEL_URI {uri!r}: S3 could not be reached: {exc}") from exc


def unpack_archive(
    archive: IO[bytes], dest: Path, identity: dict[str, Any], progress: Progress, label: str
) -> Path:
    """Unpack the gzip'd tar ``archive`` into ``dest`` atomically and return ``dest``.

    Raises :class:`ModelLoadError` (and leaves ``dest``'s parent as it was) when the archive is
    not gzip, is cut short, or holds a member that is not a plain file or folder inside ``dest``.
    """
    if archive.read(2) != GZIP_MAGIC:
        raise ModelLoadError(f"{label} is not a gzip-compressed tar archive (expected model.tar.gz)")
    archive.seek(0)
    _make_cache_dir(dest.parent, label)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    staging.chmod(0o755)
    try:
        files = 0
        with tarfile.open(fileobj=archive, mode="r|gz") as tar:
            for member in tar:
                target = _safe_target(staging, member, label)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                source = tar.extractfile(member)
                assert source is not None  # a regular file, checked by _safe_target
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("wb") as out:
                    shutil.copyfileobj(source, out, length=_CHUNK)
                files += 1
                if files % 50 == 1:
                    progress(f"unpacking {label}: {files} files")
        if files == 0:
            raise ModelLoadError(f"{label} holds no files")
        (staging / MARKER).write_text(json.dumps(identity, sort_keys=True))
        replace_dir(staging, dest)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ModelLoadError(f"{label} is a damaged or truncated archive: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"model from {label} unpacked in {dest} ({files} files)")
    return dest


def _make_cache_dir(folder: Path, label: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:  # not writable, not a folder, no space
        raise ModelLoadError(
            f"cannot fetch {label}: cannot write to the model cache {folder} ({exc.strerror}); "
            "set WARMGATE_CACHE to a writable folder"
        ) from exc


def _safe_target(staging: Path, member: tarfile.TarInfo, label: str) -> Path:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise ModelLoadError(f"{label} holds an absolute path {member.name!r}; refused")
    if ".." in name.parts:
        raise ModelLoadError(f"{label} holds a path that escapes the model folder {member.name!r}; refused")
    if member.issym() or member.islnk():
        raise ModelLoadError(f"{label} holds a link {member.name!r} -> {member.linkname!r}; refused")
    if not (member.isfile() or member.isdir()):
        raise ModelLoadError(f"{label} holds {member.name!r}, which is not a file or folder; refused")
    parts = [p for p in name.parts if p not in ("", ".")]
    return staging.joinpath(*parts) if parts else staging


def _dest_for(uri: str, name: str, cache_root: Path) -> Path:
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip(".") or "model"
    return cache_root / f"uri-{digest}" / safe


def _is_current(dest: Path, identity: dict[str, Any]) -> bool:
    marker = dest / MARKER
    if not marker.is_file():
        return False
    try:
        recorded: object = json.loads(marker.read_text())
    except ValueError:
        return False
    expected: object = json.loads(json.dumps(identity, sort_keys=True))
    return recorded == expected


def replace_dir(staging: Path, dest: Path) -> None:
    """Rename ``staging`` to ``dest``; an older ``dest`` is moved aside first, then removed."""
    if dest.exists():
        aside = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(aside)
        staging.rename(dest)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        staging.rename(dest)


class _ByteProgress:
    """boto3's transfer callback (called from its worker threads): reports every 10 % of
    ``total`` bytes."""

    def __init__(self, what: str, total: int, progress: Progress) -> None:
        self._what, self._total, self._progress = what, max(total, 1), progress
        self._lock = threading.Lock()
        self._done = 0
        self._next = 0

    def __call__(self, chunk: int) -> None:
        with self._lock:
            self._done += chunk
            percent = 100 * self._done // self._total
            if percent < self._next:
                return
            self._next = percent - percent % 10 + 10
        self._progress(f"{self._what}: {percent}% of {self._total / 1e6:.1f} MB")
