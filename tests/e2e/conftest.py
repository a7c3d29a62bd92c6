"""Fixtures shared by the end-to-end fleet tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.process import free_port
from warmgate.fleet.cpu_quota import CpuQuota
from warmgate.fleet.fleet import Fleet
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.replica import ReplicaSpec

StartFleet = Callable[..., Fleet]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path, for UNIX sockets (HAProxy's): theirs must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="wg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_fleet(tmp_path: Path) -> Iterator[StartFleet]:
    """Start fleets (HAProxy + no replicas yet) of ``spec``; every process is stopped in ``finally``."""
    fleets: list[Fleet] = []
    short = Path(tempfile.mkdtemp(prefix="wg-"))  # a UNIX socket path must stay under 108 bytes

    def start(spec: ReplicaSpec, slim: CpuQuota | None = None) -> Fleet:
        n = len(fleets)
        settings = HaproxySettings(port=free_port(), socket=short / f"haproxy-{n}.sock")
        fleet = Fleet(spec, settings, tmp_path / f"fleet-{n}", slots=6, stop_timeout_s=20.0, slim=slim)
        fleets.append(fleet)
        fleet.start()
        return fleet

    try:
        yield start
    finally:
        for fleet in fleets:
            fleet.close(timeout_s=10.0)
        shutil.rmtree(short, ignore_errors=True)
