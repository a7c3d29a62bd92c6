"""HAProxy's runtime API over its UNIX stats socket: point, admit, park and read servers.

Each command opens the socket, writes one line and reads the answer to EOF (HAProxy's
non-interactive mode). No reloads: the backend's slots are declared up front and moved
between ``maint``, ``drain`` and ``ready`` here.

Admitting a replica is three commands, because a server leaving maintenance in HAProxy 2.6
starts UP (its check state is "initial") until its first check fails, which would route
traffic to a replica that is still warming. :meth:`RuntimeApi.admit` leaves maintenance
through ``drain`` (weight 0: no new traffic), forces the health DOWN, then sets ``ready``:
from there only a passing ``/ping`` check (``rise`` of them) puts the server in rotation.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warmgate.errors import WarmgateError
from warmgate.fleet.haproxy_config import BACKEND, AdminState


class HaproxyCommandError(WarmgateError):
    """HAProxy refused a runtime API command; the message quotes its answer."""

    code = "haproxy_command_failed"


@dataclass(frozen=True)
class ServerStat:
    """One server's row of ``show stat``."""

    name: str
    status: str  # UP, DOWN, MAINT, DRAIN, "UP 1/2", "DOWN 1/2", "no check" ...
    address: str  # host:port
    check_status: str  # L7OK, L7STS, L4CON, INI, ... ("" while in maintenance)
    current_sessions: int
    total_sessions: int

    @property
    def in_rotation(self) -> bool:
        """True when HAProxy would send this server new requests now."""
        return self.status.startswith("UP")

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])


@dataclass(frozen=True)
class BackendStat:
    """The backend's servers and its own queue (requests waiting for any server)."""

    servers: tuple[ServerStat, ...]
    queued: int
    no_server_503: int = 0  # 503s HAProxy answered itself: no server could take the request

    def server(self, name: str) -> ServerStat:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(f"no server {name!r} in backend {BACKEND!r}")


def parse_show_stat(text: str, backend: str = BACKEND) -> BackendStat:
    """Parse ``show stat`` CSV (its header starts with ``# ``) into ``backend``'s rows."""
    body = text.lstrip()
    if not body.startswith("# "):
        raise HaproxyCommandError(f"'show stat' answered something that is not its CSV: {text[:200]!r}")
    rows = csv.DictReader(io.StringIO(body[2:]))
    servers: list[ServerStat] = []
    queued = backend_5xx = servers_5xx = 0
    for row in rows:
        if row.get("pxname") != backend:
            continue
        if row["svname"] == "BACKEND":
            queued = int(row["qcur"] or 0)
            backend_5xx = int(row.get("hrsp_5xx") or 0)
        elif row["svname"] != "FRONTEND":
            servers_5xx += int(row.get("hrsp_5xx") or 0)
            servers.append(
                ServerStat(
                    name=row["svname"],
                    status=row["status"],
                    address=row.get("addr") or "",
                    check_status=row.get("check_status") or "",
                    current_sessions=int(row["scur"] or 0),
                    total_sessions=int(row["stot"] or 0),
                )
            )
    return BackendStat(tuple(servers), queued, max(0, backend_5xx - servers_5xx))


class RuntimeApi:
    """Client of one HAProxy's admin-level stats socket."""

    def __init__(self, path: Path, timeout_s: float = 5.0, backend: str = BACKEND) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.backend = backend

    def command(self, line: str) -> str:
        """Send one command; return HAProxy's answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(str(self.path))
            sock.sendall(line.encode() + b"\n")
            chunks: list[bytes] = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def show_stat(self) -> BackendStat:
        return parse_show_stat(self.command("show stat"), self.backend)

    def set_address(self, server: str, host: str, port: int) -> None:
        answer = self.command(f"set server {self.backend}/{server} addr {host} port {port}")
        if "changed" not in answer.lower() and "no need to change" not in answer.lower():
            raise HaproxyCommandError(
                f"set {server} address to {host}:{port}: HAProxy said {answer.strip()!r}"
            )

    def set_state(self, server: str, state: AdminState) -> None:
        self._silent(f"set server {self.backend}/{server} state {state.value}")

    def force_health_down(self, server: str) -> None:
        self._silent(f"set server {self.backend}/{server} health down")

    def admit(self, server: str) -> None:
        """Put ``server`` in rotation once (and only once) its health check passes."""
        self.set_state(server, AdminState.DRAIN)
        self.force_health_down(server)
        self.set_state(server, AdminState.READY)

    def stage(self, server: str) -> None:
        """Health-check ``server`` but send it nothing: ``drain`` (weight 0) with its health
        forced DOWN, so its status reads ``DRAIN`` only once a ``/ping`` check passed (``DOWN``
        until then). :meth:`set_states` with ``ready`` then puts it in rotation at once."""
        self.set_state(server, AdminState.DRAIN)
        self.force_health_down(server)

    def set_states(self, changes: Sequence[tuple[str, AdminState]]) -> None:
        """Several ``set server … state`` commands on one line (``;``-separated), run by
        HAProxy one after the other in one connection: one step for the caller."""
        if not changes:
            return
        line = ";".join(
            f"set server {self.backend}/{server} state {state.value}" for server, state in changes
        )
        self._silent(line)

    def _silent(self, line: str) -> None:
        """Run a command whose success is an empty answer."""
        answer = self.command(line).strip()
        if answer:
            raise HaproxyCommandError(f"{line!r}: HAProxy said {answer!r}")
