"""Which of the policy's swap candidates the fleet trades for a READY standby."""

from __future__ import annotations

import dataclasses

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.fleet.control import ControlLoop
from warmgate.fleet.fleet import Load, ReplicaInfo, Role
from warmgate.fleet.runtime_api import BackendStat, ServerStat


def replica(rid: str, slot: str, port: int, started_at: float) -> ReplicaInfo:
    return ReplicaInfo(rid, Role.SERVING, ReplicaPhase.WARMING, 1, port, slot, Load(), started_at)


def server(slot: str, port: int, status: str) -> ServerStat:
    return ServerStat(slot, status, f"127.0.0.1:{port}", "L7OK" if status == "UP" else "L7STS", 0, 0)


def test_only_cold_starts_still_starting_and_not_yet_routed_are_offered_for_a_swap() -> None:
    replicas = [
        replica("replica-1", "s1", 1001, started_at=5.0),
        replica("replica-2", "s2", 1002, started_at=30.0),
        replica("replica-3", "s3", 1003, started_at=31.0),  # HAProxy routes to it already
        dataclasses.replace(replica("replica-4", "s4", 1004, started_at=32.0), phase=ReplicaPhase.READY),
    ]
    backend = BackendStat(
        (
            server("s1", 1001, "DOWN"),
            server("s2", 1002, "DOWN"),
            server("s3", 1003, "UP"),
            server("s4", 1004, "DOWN"),
        ),
        queued=0,
    )
    listed = ("replica-4", "replica-3", "replica-2", "replica-1")
    assert ControlLoop._swappable(listed, replicas, backend) == ("replica-2", "replica-1")
