"""The fleet's :class:`~warmgate.fleet.store.MatchKey`: what its replicas serve, and how.

A standby may be promoted only by a fleet whose replicas would serve exactly what it serves.
The key is computed from the replica spec, the way ``warmgate serve`` will see it:

- ``model_digest``: SHA-256 over every file of the model directory (relative path and bytes,
  in path order), so re-exported or edited weights, a new tokenizer or a changed
  ``warmgate.toml`` give another key;
- ``version``: warmgate's own version;
- ``device``: where the replica will run (``cuda`` or ``cpu``: ``auto`` resolved the way the
  ONNX backend picks its provider);
- options: the resolved serving options that change behaviour (backend, ``max_batch``, batch
  buckets, sequence buckets, oversize policy), after flags, environment and ``warmgate.toml``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import warmgate
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import MatchKey

if TYPE_CHECKING:
    from warmgate.config import Config

_CHUNK = 1 << 20
_CUDA_PROVIDER = "CUDAExecutionProvider"


def model_digest(model_dir: Path, exclude: Path | None = None) -> str:
    """SHA-256 over each file's relative path and content, in path order."""
    digest = hashlib.sha256()
    root = model_dir.resolve()
    skip = exclude.resolve() if exclude is not None else None
    files = sorted(p for p in root.rglob("*") if p.is_file() and (skip is None or skip not in p.parents))
    for path in files:
        rel = path.relative_to(root).as_posix().encode()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(path.stat().st_size.to_bytes(8, "big"))
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def replica_config(spec: ReplicaSpec) -> Config:
    """The config a replica launched from ``spec`` resolves: its ``warmgate serve`` flags
    (named after the config fields, as ``warmgate/cli.py`` declares them) over the environment
    over the model's ``warmgate.toml``. Flags this parser does not know are left alone."""
    # Imported here: the fleet reads the serving config only when it builds a key.
    from warmgate.config import add_arguments, load_config

    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    known, _ = parser.parse_known_args(spec.command(8080)[4:])  # after `python -m warmgate serve`
    return load_config(vars(known), env={**os.environ, **spec.env})


def resolve_device(device: str) -> str:
    """``cuda`` or ``cpu``: ``auto`` is CUDA when onnxruntime offers it (as the ONNX backend picks)."""
    if device != "auto":
        return device
    import onnxruntime

    return "cuda" if _CUDA_PROVIDER in onnxruntime.get_available_providers() else "cpu"


def fleet_match_key(spec: ReplicaSpec) -> MatchKey:
    """The key every standby of a fleet launching ``spec`` is registered and claimed under."""
    config = replica_config(spec)
    cache = Path(config.graph_cache) if config.graph_cache else None
    options = {
        "backend": config.backend.value,
        "max_batch": str(config.max_batch),
        "batch_sizes": ",".join(map(str, config.batch_sizes)),  # empty: powers of two to max_batch
        "seq_lens": ",".join(map(str, config.seq_lens)),
        "oversize": config.oversize.value,
    }
    return MatchKey.of(
        model_digest(spec.model_dir, exclude=cache),
        warmgate.__version__,
        resolve_device(str(config.device.value)),
        options,
    )
