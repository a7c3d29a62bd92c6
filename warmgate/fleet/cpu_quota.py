"""Slim standbys on this host: a READY standby's process held to a sliver of CPU by a cgroup.

A standby that waits READY needs its model in memory, not cores: :class:`CpuQuota` puts its
process in a cgroup of its own capped at ``cores`` (the CFS quota: ``cores`` x the period), and
lifts the cap when the standby is claimed, before it takes traffic. The process keeps its
threads, its memory and its warm caches; only its CPU time is bounded while it waits. This is
what Kubernetes' in-place pod resize does to a container's cgroup (``resizePolicy`` cpu
``NotRequired``), here without an orchestrator.

Both cgroup hierarchies are supported: v2 (``cpu.max``, the ``cpu`` controller enabled for the
children of the root used) and v1 (``cpu.cfs_quota_us`` under the ``cpu`` controller's mount).
Writing a cgroup needs root or a delegated subtree; :func:`find_cpu_root` says where one is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from warmgate.errors import WarmgateError

log = logging.getLogger("warmgate.fleet")

PERIOD_US = 100_000
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


class CpuQuotaUnavailable(WarmgateError):
    """No writable cgroup CPU controller on this host: slim standbys cannot be held slim."""

    code = "cpu_quota_unavailable"


def find_cpu_root(name: str) -> Path:
    """A writable cgroup directory ``name`` under the CPU controller (v2, else v1), created."""
    for mount, control in ((_V2, "cpu.max"), (_V1, "cpu.cfs_quota_us")):
        if not (mount / control).exists() and not _v2_cpu_enabled(mount):
            continue
        root = mount / name
        try:
            if mount == _V2:
                (mount / "cgroup.subtree_control").write_text("+cpu")
            root.mkdir(exist_ok=True)
            if mount == _V2:
                (root / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            raise CpuQuotaUnavailable(f"cannot create the cgroup {root}: {exc}") from exc
        return root
    raise CpuQuotaUnavailable(
        "no cgroup CPU controller found (cgroup v2 with the cpu controller at /sys/fs/cgroup, "
        "or v1 at /sys/fs/cgroup/cpu): run without slim standbys"
    )


def open_quota(name: str, cores: float | None) -> CpuQuota | None:
    """Slim standbys held to ``cores`` under a cgroup ``name`` of their own; None without."""
    return CpuQuota(find_cpu_root(name), cores) if cores is not None else None


def _v2_cpu_enabled(mount: Path) -> bool:
    controllers = mount / "cgroup.controllers"
    return mount == _V2 and controllers.exists() and "cpu" in controllers.read_text().split()


class CpuQuota:
    """One cgroup per held process under ``root`` (from :func:`find_cpu_root`)."""

    def __init__(self, root: Path, cores: float) -> None:
        if cores <= 0:
            raise CpuQuotaUnavailable(f"a slim standby needs a CPU share > 0 cores, got {cores}")
        self.root = root
        self.cores = cores
        self.v2 = (root / "cgroup.controllers").exists()

    def hold(self, name: str, pid: int) -> None:
        """Cap process ``pid`` (every thread, and any it starts) at ``cores``."""
        group = self.root / name
        group.mkdir(exist_ok=True)
        self._write_limit(group, round(self.cores * PERIOD_US))
        (group / "cgroup.procs").write_text(str(pid))
        log.info("%s (pid %s) held to %.2f cores", name, pid, self.cores)

    def lift(self, name: str) -> None:
        """Remove the cap of ``name``'s cgroup: its process runs on every core again."""
        group = self.root / name
        if group.exists():
            self._write_limit(group, None)
            log.info("%s released from its CPU quota", name)

    def limit_of(self, name: str) -> float | None:
        """The cap of ``name``'s cgroup in cores; None when it has none (or no cgroup)."""
        group = self.root / name
        if not group.exists():
            return None
        if self.v2:
            quota = (group / "cpu.max").read_text().split()[0]
            return None if quota == "max" else int(quota) / PERIOD_US
        quota_us = int((group / "cpu.cfs_quota_us").read_text())
        return None if quota_us < 0 else quota_us / PERIOD_US

    def forget(self, name: str) -> None:
        """Remove ``name``'s cgroup once its process is gone (a cgroup with a process stays)."""
        try:
            os.rmdir(self.root / name)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cgroup %s not removed: %s", self.root / name, exc)

    def close(self) -> None:
        """Remove every child cgroup and the root (their processes gone)."""
        if not self.root.exists():
            return
        for child in self.root.iterdir():
            if child.is_dir():
                self.forget(child.name)
        try:
            os.rmdir(self.root)
        except OSError as exc:
            log.warning("cgroup %s not removed: %s", self.root, exc)

    def _write_limit(self, group: Path, quota_us: int | None) -> None:
        if self.v2:
            value = "max" if quota_us is None else str(quota_us)
            (group / "cpu.max").write_text(f"{value} {PERIOD_US}")
            return
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(-1 if quota_us is None else quota_us))
