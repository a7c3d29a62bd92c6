"""HAProxy's configuration for a local fleet, rendered by one pure function.

The backend declares a fixed set of ``server`` lines ("slots") up front, all in maintenance
(``disabled``) on a placeholder address; the fleet points a slot at a replica and admits it
with the runtime API (see :mod:`warmgate.fleet.runtime_api`) instead of
reloading. Every slot carries an active health check: ``GET /ping`` must answer 200, checked
every ``check_inter_ms``, so a warming or draining replica is out of rotation within one
interval. A request that meets a refused connection, an empty response or a 503 is retried
on another server (``retry-on`` + ``option redispatch``), which is what makes scale-in lossless.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from warmgate.errors import ConfigError

BACKEND = "replicas"
FRONTEND = "warmgate"
PLACEHOLDER_PORT = 1  # a disabled slot's address; never checked while in maintenance


class AdminState(Enum):
    """A server's administrative state in HAProxy's runtime API (``set server ... state``)."""

    READY = "ready"  # in rotation whenever its health check passes
    DRAIN = "drain"  # weight 0: keeps its connections, gets no new ones
    MAINT = "maint"  # out of rotation, not checked


@dataclass(frozen=True)
class ServerLine:
    """One ``server`` line of the backend."""

    name: str
    host: str = "127.0.0.1"
    port: int = PLACEHOLDER_PORT
    state: AdminState = AdminState.MAINT


@dataclass(frozen=True)
class HaproxySettings:
    """Knobs of the rendered configuration. Times are milliseconds, as HAProxy writes them."""

    port: int
    socket: Path
    bind: str = "127.0.0.1"
    stats_port: int | None = None  # also serve the HTML/CSV stats page at /stats on this port
    balance: str = "leastconn"
    check_inter_ms: int = 200
    check_fall: int = 1
    check_rise: int = 1
    check_timeout_ms: int = 1000
    connect_timeout_ms: int = 1000
    client_timeout_ms: int = 120_000
    server_timeout_ms: int = 120_000
    queue_timeout_ms: int = 10_000
    retries: int = 3
    retry_on: tuple[str, ...] = ("conn-failure", "empty-response", "503")
    threads: int | None = None  # HAProxy's default: one per CPU
    server_maxconn: int | None = None  # per replica; past it requests wait in the backend's queue

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError(f"HAProxy port must be 1..65535, got {self.port}")
        positive = ("check_inter_ms", "check_fall", "check_rise", "check_timeout_ms", "connect_timeout_ms")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")


def slot_names(count: int) -> tuple[str, ...]:
    """The backend's server names: ``s1`` … ``sN``."""
    return tuple(f"s{n}" for n in range(1, count + 1))


def render_config(settings: HaproxySettings, servers: Sequence[ServerLine]) -> str:
    """The whole ``haproxy.cfg`` text for ``servers`` behind one frontend."""
    if not servers:
        raise ConfigError("an HAProxy backend needs at least one server line (slot)")
    names = [s.name for s in servers]
    if len(set(names)) != len(names):
        raise ConfigError(f"server names must be unique, got {names}")
    s = settings
    lines = [
        "# rendered by warmgate.fleet; servers change at run time over the stats socket",
        "global",
        f"    stats socket {s.socket} mode 600 level admin",
        "    stats timeout 10s",
        *([f"    nbthread {s.threads}"] if s.threads else []),
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {s.connect_timeout_ms}ms",
        f"    timeout client {s.client_timeout_ms}ms",
        f"    timeout server {s.server_timeout_ms}ms",
        f"    timeout queue {s.queue_timeout_ms}ms",
        f"    timeout check {s.check_timeout_ms}ms",
        f"    retries {s.retries}",
        f"    retry-on {' '.join(s.retry_on)}",
        "    option redispatch 1",
        # wait for the whole request before choosing a server: HAProxy retries a POST refused
        # with 503 (a DEGRADED or draining replica) on another server only when it holds the body
        "    option http-buffer-request",
        "",
        f"frontend {FRONTEND}",
        f"    bind {s.bind}:{s.port}",
        f"    default_backend {BACKEND}",
        "",
        f"backend {BACKEND}",
        f"    balance {s.balance}",
        "    option httpchk GET /ping",
        "    http-check expect status 200",
        f"    default-server check inter {s.check_inter_ms}ms fastinter {s.check_inter_ms}ms "
        f"downinter {s.check_inter_ms}ms fall {s.check_fall} rise {s.check_rise}"
        + (f" maxconn {s.server_maxconn}" if s.server_maxconn else ""),
        *(_server(line) for line in servers),
    ]
    if s.stats_port is not None:
        lines += [
            "",
            "listen stats",
            f"    bind {s.bind}:{s.stats_port}",
            "    stats enable",
            "    stats uri /stats",
            "    stats refresh 1s",
        ]
    return "\n".join(lines) + "\n"


def _server(line: ServerLine) -> str:
    text = f"    server {line.name} {line.host}:{line.port}"
    if line.state is AdminState.MAINT:
        return text + " disabled"
    if line.state is AdminState.DRAIN:
        return text + " weight 0"
    return text
