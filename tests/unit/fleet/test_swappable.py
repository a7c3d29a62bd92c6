"""Which of the policy's swap candidates the fleet trades for a READY standby."""

from __future__ import annotations

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.autoscaling.pool import Member, MemberState
from warmgate.fleet.control import ControlLoop
from warmgate.fleet.fleet import Load, ReplicaInfo, Role
from warmgate.fleet.runtime_api import BackendStat, ServerStat


def replica(rid: str, slot: str, port: int, started_at: float) -> ReplicaInfo:
    return ReplicaInfo(rid, Role.SERVING, ReplicaPhase.WARMING, 1, port, slot, Load(), started_at)


def server(slot: str, port: int, status: str) -> ServerStat:
    return ServerStat(slot, status, f"127.0.0.1:{port}", "L7OK" if status == "UP" else "L7STS", 0, 0)


def test_only_cold_starts_launched_after_the_standby_and_not_yet_routed_are_traded() -> None:
    standby = Member("standby-a", MemberState.READY, created_at=10.0, ready_at=20.0)
    replicas = [
        replica("replica-1", "s1", 1001, started_at=5.0),  # started before the standby: no gain
        replica("replica-2", "s2", 1002, started_at=30.0),  # a burst's cold start: traded
        replica("replica-3", "s3", 1003, started_at=31.0),  # HAProxy routes to it already
    ]
    backend = BackendStat(
        (server("s1", 1001, "DOWN"), server("s2", 1002, "DOWN"), server("s3", 1003, "UP")), queued=0
    )
    listed = ("replica-3", "replica-2", "replica-1")
    assert ControlLoop._swappable(listed, replicas, backend, [standby]) == ("replica-2",)
    warming = Member("standby-b", MemberState.WARMING, created_at=1.0)
    assert ControlLoop._swappable(listed, replicas, backend, [warming]) == ()  # no READY standby
