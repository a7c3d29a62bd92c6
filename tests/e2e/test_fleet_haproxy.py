"""The fleet's pure pieces (HAProxy config rendering, ``show stat`` parsing, the rate meter and the
policy's observation) and HAProxy's acceptance of the rendered configuration."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.errors import ConfigError
from warmgate.fleet.control import RateMeter, observe
from warmgate.fleet.fleet import ReplicaInfo, Role
from warmgate.fleet.haproxy import HaproxyError, find_haproxy
from warmgate.fleet.haproxy_config import (
    AdminState,
    HaproxySettings,
    ServerLine,
    render_config,
    slot_names,
)
from warmgate.fleet.probe import Load, parse_metrics, phase_of
from warmgate.fleet.runtime_api import parse_show_stat

pytestmark = pytest.mark.e2e

SETTINGS = HaproxySettings(port=18080, socket=Path("/tmp/wg.sock"), stats_port=18081)
SERVERS = [
    ServerLine("s1", port=9001, state=AdminState.READY),
    ServerLine("s2", port=9002, state=AdminState.DRAIN),
    ServerLine("s3"),
]


def test_config_checks_ping_fast_and_retries_elsewhere() -> None:
    text = render_config(SETTINGS, SERVERS)
    lines = [line.strip() for line in text.splitlines()]
    assert "bind 127.0.0.1:18080" in lines
    assert "option httpchk GET /ping" in lines
    assert "http-check expect status 200" in lines
    assert "default-server check inter 200ms fastinter 200ms downinter 200ms fall 1 rise 1" in lines
    assert "retry-on conn-failure empty-response 503" in lines
    assert "option redispatch 1" in lines
    assert "stats socket /tmp/wg.sock mode 600 level admin" in lines
    assert "stats uri /stats" in lines
    assert [line for line in lines if line.startswith("server ")] == [
        "server s1 127.0.0.1:9001",
        "server s2 127.0.0.1:9002 weight 0",
        "server s3 127.0.0.1:1 disabled",
    ]


def test_check_timing_is_configurable() -> None:
    settings = HaproxySettings(port=1, socket=Path("/s"), check_inter_ms=500, check_fall=2, check_rise=3)
    assert "inter 500ms fastinter 500ms downinter 500ms fall 2 rise 3\n" in render_config(settings, SERVERS)
    limited = HaproxySettings(port=1, socket=Path("/s"), server_maxconn=4)
    assert "fall 1 rise 1 maxconn 4\n" in render_config(limited, SERVERS)


def test_config_refuses_what_haproxy_would() -> None:
    with pytest.raises(ConfigError, match="unique"):
        render_config(SETTINGS, [ServerLine("s1"), ServerLine("s1")])
    with pytest.raises(ConfigError, match="at least one"):
        render_config(SETTINGS, [])
    with pytest.raises(ConfigError, match="check_inter_ms"):
        HaproxySettings(port=1, socket=Path("/s"), check_inter_ms=0)


def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    try:
        binary = find_haproxy()
    except HaproxyError as exc:
        pytest.skip(str(exc))
    config = tmp_path / "haproxy.cfg"
    servers = [ServerLine(name) for name in slot_names(4)]
    settings = dataclasses.replace(SETTINGS, server_maxconn=4, threads=2)
    config.write_text(render_config(settings, servers))
    result = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


SHOW_STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,check_status,addr,
warmgate,FRONTEND,,,3,5,,40,OPEN,,,
replicas,s1,0,0,2,4,,30,UP,L7OK,127.0.0.1:9001,
replicas,s2,0,0,0,1,,10,DOWN,L7STS,127.0.0.1:9002,
replicas,s3,0,0,0,0,,0,MAINT,,127.0.0.1:1,
replicas,BACKEND,4,6,2,5,,40,UP,,,
"""


def test_show_stat_rows_become_server_stats() -> None:
    backend = parse_show_stat(SHOW_STAT)
    assert [(s.name, s.status, s.port, s.in_rotation) for s in backend.servers] == [
        ("s1", "UP", 9001, True),
        ("s2", "DOWN", 9002, False),
        ("s3", "MAINT", 1, False),
    ]
    assert backend.queued == 4
    assert backend.server("s1").current_sessions == 2
    assert backend.server("s2").check_status == "L7STS"
    assert backend.no_server_503 == 0  # no hrsp_5xx column: nothing counted


def test_503s_haproxy_answered_itself_are_the_backends_minus_the_servers() -> None:
    text = """# pxname,svname,qcur,scur,stot,status,check_status,addr,hrsp_5xx,
replicas,s1,0,0,30,UP,L7OK,127.0.0.1:9001,2,
replicas,s2,0,0,10,DOWN,L7STS,127.0.0.1:9002,1,
replicas,BACKEND,0,0,40,UP,,,10,
"""
    assert parse_show_stat(text).no_server_503 == 7  # 10 at the backend, 3 from the replicas


def test_metrics_give_in_flight_and_invocations_of_every_status() -> None:
    text = "\n".join(
        [
            "# TYPE warmgate_requests_in_flight gauge",
            "warmgate_requests_in_flight 3.0",
            "# TYPE warmgate_request_duration_seconds histogram",
            'warmgate_request_duration_seconds_count{route="/invocations",status="200"} 7.0',
            'warmgate_request_duration_seconds_count{route="/invocations",status="503"} 2.0',
            'warmgate_request_duration_seconds_count{route="/ping",status="200"} 50.0',
        ]
    )
    assert parse_metrics(text + "\n") == Load(in_flight=3, invocations=9)


def test_server_phases_coarsen_to_the_policy_phases() -> None:
    assert [phase_of(w) for w in ("starting", "loading", "warming", "ready")] == [
        ReplicaPhase.WARMING,
        ReplicaPhase.WARMING,
        ReplicaPhase.WARMING,
        ReplicaPhase.READY,
    ]
    assert [phase_of(w) for w in ("draining", "stopped", "failed", "???")] == [
        ReplicaPhase.DRAINING,
        ReplicaPhase.DRAINING,
        ReplicaPhase.FAILED,
        ReplicaPhase.WARMING,  # unknown: never counted as hot
    ]


def test_rate_meter_counts_new_requests_per_second() -> None:
    meter = RateMeter()
    assert meter.update({"a": 10}, now=0.0) == 0.0
    assert meter.update({"a": 30, "b": 5}, now=2.0) == 10.0  # b is new: counted from its next sample
    assert meter.update({"a": 30, "b": 9}, now=4.0) == 2.0
    assert meter.update({"b": 9}, now=5.0) == 0.0  # a left


def _info(rid: str, phase: ReplicaPhase, in_flight: int) -> ReplicaInfo:
    return ReplicaInfo(rid, Role.SERVING, phase, 1, 2, "s1", Load(in_flight, 0), 0.0)


def test_observation_counts_in_flight_on_hot_replicas_and_queue() -> None:
    obs = observe(
        [
            _info("a", ReplicaPhase.READY, 2),
            _info("b", ReplicaPhase.WARMING, 5),
            _info("c", ReplicaPhase.READY, 1),
        ],
        request_rate=4.0,
        queued=3,
    )
    assert obs.hot == 2
    assert obs.demand_in_flight == 2 + 1 + 3
    assert obs.request_rate == 4.0


def test_the_fleet_imports_nothing_of_server_or_models() -> None:
    code = (
        "import sys, warmgate.fleet.cli, warmgate.fleet.control; "
        "print(sorted(m for m in sys.modules if m.startswith(('warmgate.server', 'warmgate.models', "
        "'warmgate.config'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
