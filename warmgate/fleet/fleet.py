"""The fleet: replica processes, one HAProxy in front, and the books that tie them together.

This is the actuator and the observer, with no policy of its own. :class:`Fleet` launches
replicas (SERVING ones straight into HAProxy's rotation, gated by its ``/ping`` check;
STANDBY ones parked in ``maint``), promotes standbys, drains and removes replicas, and
refreshes what it knows by probing each replica over HTTP and polling its process.
:mod:`warmgate.fleet.control` decides what to call when.

A replica's state is the policy's own :class:`~warmgate.autoscaling.model.ReplicaPhase`;
its :class:`Role` says whether HAProxy may route to it.

**Generations.** Every replica is launched from the fleet's spec of one *generation* (its
model directory and flags). The *live* generation is the one in HAProxy's rotation. A model
change (:mod:`warmgate.fleet.redeploy`) stages a new generation (:meth:`Fleet.stage`): from then
on every launch uses its spec, and SERVING capacity is launched STAGED (health-checked, held
out of rotation) until :meth:`Fleet.switch` swaps the generations in one runtime API step.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import httpx

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.errors import WarmgateError
from warmgate.fleet.cpu_quota import CpuQuota
from warmgate.fleet.haproxy import HaproxyProcess, find_haproxy
from warmgate.fleet.haproxy_config import (
    AdminState,
    HaproxySettings,
    ServerLine,
    render_config,
    slot_names,
)
from warmgate.fleet.probe import Load, Probe, probe
from warmgate.fleet.replica import HOST, ReplicaProcess, ReplicaSpec, pick_port
from warmgate.fleet.runtime_api import BackendStat, RuntimeApi
from warmgate.fleet.slots import Slots

log = logging.getLogger("warmgate.fleet")


class Role(Enum):
    SERVING = "serving"  # in HAProxy's rotation whenever its /ping check passes
    STANDBY = "standby"  # a warm-pool member: its server line stays in maint until promoted
    STAGED = "staged"  # the next generation's capacity: checked by HAProxy, held in drain (no traffic)


def routed(backend: BackendStat, replica: ReplicaInfo) -> bool:
    """HAProxy routes to ``replica`` now: its slot is UP and points at its port."""
    server = backend.server(replica.slot)
    return server.in_rotation and server.port == replica.port


class FleetError(WarmgateError):
    """The fleet was asked about a replica it does not have, or used before ``start``."""

    code = "fleet_error"


@dataclass(frozen=True)
class ReplicaInfo:
    """A snapshot of one replica as the fleet last saw it."""

    replica_id: str
    role: Role
    phase: ReplicaPhase
    pid: int
    port: int
    slot: str
    load: Load
    started_at: float
    ready_at: float | None = None  # first probe that saw it READY
    generation: int = 0  # the fleet spec it was launched from (see the module doc)
    reason: str = ""  # the replica's own reason for its phase (why it FAILED, for one)


@dataclass
class _Tracked:
    process: ReplicaProcess
    role: Role
    slot: str
    phase: ReplicaPhase
    started_at: float
    generation: int
    load: Load = field(default_factory=Load)
    draining_since: float | None = None
    ready_at: float | None = None
    reason: str = ""
    slim: bool = False  # a READY standby held to the fleet's CPU quota
    rearm_at_ready: bool = False  # switched into rotation while warming: re-arm its keep-warm at READY

    def info(self) -> ReplicaInfo:
        p = self.process
        return ReplicaInfo(
            p.replica_id,
            self.role,
            self.phase,
            p.pid,
            p.port,
            self.slot,
            self.load,
            self.started_at,
            self.ready_at,
            self.generation,
            self.reason,
        )


@dataclass(frozen=True)
class Switch:
    """What :meth:`Fleet.switch` did: the generation now live, the STAGED replicas it put in
    rotation, and the replicas of older generations it took out (drained or removed)."""

    generation: int
    admitted: tuple[str, ...]
    retired: tuple[str, ...]


class Fleet:
    """Replicas of ``spec`` behind an HAProxy listening on ``haproxy.port``.

    ``slots`` server lines are declared; each live replica (draining ones included) holds
    one. ``stop_timeout_s`` bounds a drain: past it the process is killed.
    """

    spec: ReplicaSpec  # what new replicas are launched from: the newest generation's spec

    def __init__(
        self,
        spec: ReplicaSpec,
        haproxy: HaproxySettings,
        workdir: Path,
        *,
        slots: int = 8,
        haproxy_binary: str | None = None,
        probe_timeout_s: float = 1.0,
        stop_timeout_s: float = 30.0,
        slim: CpuQuota | None = None,
    ) -> None:
        self.spec = spec
        self._specs = {0: spec}
        self._generation = 0  # the newest generation: what launches use
        self._live = 0  # the generation in HAProxy's rotation
        self._numbers = itertools.count(1)  # a cancelled generation's number is never reused
        self.settings = haproxy
        self.workdir = workdir
        self.stop_timeout_s = stop_timeout_s
        self._slots = Slots(slot_names(slots))
        self._binary = haproxy_binary
        self._replicas: dict[str, _Tracked] = {}
        self._ids = (f"replica-{n}" for n in itertools.count(1))
        self._lock = threading.RLock()
        self._client = httpx.Client(timeout=probe_timeout_s)
        self._haproxy: HaproxyProcess | None = None
        self._api: RuntimeApi | None = None
        self.slim = slim  # slim standbys: READY ones held to a CPU quota until promoted

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Render the configuration and start HAProxy (no replicas yet)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "haproxy.cfg"
        config.write_text(render_config(self.settings, [ServerLine(n) for n in self._slots.names]))
        self._haproxy = HaproxyProcess(
            find_haproxy(self._binary), config, self.settings.socket, self.workdir / "haproxy.log"
        )
        self._api = self._haproxy.start()
        log.info(
            "haproxy pid %s listening on %s:%s", self._haproxy.pid, self.settings.bind, self.settings.port
        )

    def close(self, timeout_s: float | None = None) -> None:
        """Drain every replica (SIGTERM), wait for them, kill stragglers, stop HAProxy."""
        deadline = time.monotonic() + (self.stop_timeout_s if timeout_s is None else timeout_s)
        with self._lock:
            tracked = list(self._replicas.values())
            for t in tracked:
                t.process.terminate()
        for t in tracked:
            if t.process.wait(max(0.0, deadline - time.monotonic())) is None:
                log.warning("%s did not exit in time: killing it", t.process.replica_id)
                t.process.kill()
                t.process.wait(5.0)
        with self._lock:
            self._replicas.clear()
        if self._haproxy is not None:
            self._haproxy.stop()
        if self.slim is not None:
            self.slim.close()
        self._client.close()

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def api(self) -> RuntimeApi:
        if self._api is None:
            raise FleetError("the fleet is not started: call start() (or use it as a context manager)")
        return self._api

    @property
    def url(self) -> str:
        """Where clients send requests: HAProxy's frontend."""
        return f"http://{self.settings.bind}:{self.settings.port}"

    # -- generations ------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The newest generation: what every launch now uses."""
        return self._generation

    @property
    def live_generation(self) -> int:
        """The generation in HAProxy's rotation."""
        return self._live

    @property
    def staging(self) -> bool:
        """A newer generation is staged and not yet switched to: serving capacity launches STAGED."""
        return self._generation != self._live

    def stage(self, spec: ReplicaSpec) -> int:
        """Launch from ``spec`` from now on, as a new generation held out of rotation until
        :meth:`switch`. A generation already staged is cancelled first (:meth:`unstage`)."""
        with self._lock:
            if self.staging:
                self.unstage()
            self._generation = next(self._numbers)
            self._specs[self._generation] = spec
            self.spec = spec
            log.info("generation %d staged: %s", self._generation, spec.model_dir)
            return self._generation

    def unstage(self) -> tuple[str, ...]:
        """Cancel the staged generation: remove its STAGED replicas; launches go back to the
        live spec. Its standbys are the pool's to retire. Returns the removed ids."""
        with self._lock:
            staged = tuple(rid for rid, t in self._replicas.items() if t.role is Role.STAGED)
            for rid in staged:
                self.remove(rid)
            self._generation = self._live
            self.spec = self._specs[self._live]
            return staged

    def switch(self, now: float) -> Switch:
        """Blue/green cut-over in one runtime API line: every STAGED replica ``ready`` (one
        whose check passed is in rotation at once), every serving replica of an older
        generation ``drain`` (no new requests; in-flight ones finish). Then the old ones get
        SIGTERM (FAILED ones are removed) and the staged generation is the live one. The READY
        staged replicas re-arm their keep-warm first: they have idled since READY. One still
        warming (a scale-out staged late) re-arms it when :meth:`refresh` first sees it READY."""
        with self._lock:
            staged_now = [t for t in self._replicas.values() if t.role is Role.STAGED]
            urls = [t.process.url for t in staged_now if t.phase is ReplicaPhase.READY]
            for t in staged_now:
                t.rearm_at_ready = t.phase is ReplicaPhase.WARMING
        self._rearm_keep_warm(urls)
        with self._lock:
            staged = [t for t in self._replicas.values() if t.role is Role.STAGED]
            old = [
                t
                for t in self._replicas.values()
                if t.role is Role.SERVING and t.generation != self._generation
            ]
            changes = [(t.slot, AdminState.READY) for t in staged]
            changes += [(t.slot, AdminState.DRAIN) for t in old if t.phase is not ReplicaPhase.DRAINING]
            self.api.set_states(changes)
            for t in staged:
                t.role = Role.SERVING
            self._live = self._generation
            for t in old:
                rid = t.process.replica_id
                if t.phase is ReplicaPhase.FAILED:
                    self.remove(rid)
                elif t.phase is not ReplicaPhase.DRAINING:
                    t.process.terminate()
                    t.phase, t.draining_since = ReplicaPhase.DRAINING, now
            return Switch(
                self._live,
                tuple(t.process.replica_id for t in staged),
                tuple(t.process.replica_id for t in old),
            )

    # -- actuation --------------------------------------------------------------------------

    def launch(self, role: Role, now: float, replica_id: str | None = None, args: Iterable[str] = ()) -> str:
        """Start a replica process of the newest generation. SERVING: admitted to rotation (its
        check gates traffic); STAGED: checked, held in drain; STANDBY: parked in maint. The last
        two keep no keep-warm from READY (they take no traffic until :meth:`promote` or
        :meth:`switch` re-arms it). Raises :class:`~.slots.NoFreeSlot` when every slot is held."""
        if role is not Role.SERVING:  # no traffic until a claim or a switch re-arms its keep-warm
            args = (*args, "--no-keep-warm-at-ready")
        with self._lock:
            rid = replica_id or next(self._ids)
            slot = self._slots.acquire(rid)
            port = pick_port(taken={t.process.port for t in self._replicas.values()})
            spec = dataclasses.replace(self.spec, args=(*self.spec.args, *args))
            process = ReplicaProcess(rid, spec, port, self.workdir / "logs")
            tracked = _Tracked(process, role, slot, ReplicaPhase.WARMING, now, self._generation)
            self._replicas[rid] = tracked
            self.api.set_state(slot, AdminState.MAINT)
            self.api.set_address(slot, HOST, port)
            self._enter(tracked)
            log.info(
                "launched %s (%s, generation %d) pid %s port %s slot %s",
                rid,
                role.value,
                self._generation,
                process.pid,
                port,
                slot,
            )
            return rid

    def promote(self, replica_id: str, role: Role = Role.SERVING) -> None:
        """A standby joins the rotation (its process keeps running: no cold start), or, with
        ``role`` STAGED, the staged generation's capacity (checked, held out of rotation).
        A slim standby is released from its CPU quota first; one joining the rotation then
        re-arms its keep-warm: it has idled since READY."""
        with self._lock:
            t = self._get(replica_id)
            if t.slim and self.slim is not None:
                self.slim.lift(replica_id)
                t.slim = False
            url = t.process.url
        if role is Role.SERVING:
            self._rearm_keep_warm([url])
        with self._lock:
            t = self._get(replica_id)
            t.role = role
            self._enter(t)
            log.info("promoted standby %s to %s (slot %s)", replica_id, role.value, t.slot)

    def park(self, replica_id: str) -> None:
        """A replica still starting leaves the rotation and goes on starting as a STANDBY
        (parked in maint): the warm pool adopted it. Its process is untouched."""
        with self._lock:
            t = self._get(replica_id)
            t.role = Role.STANDBY
            self.api.set_state(t.slot, AdminState.MAINT)
            log.info("parked %s as a standby (slot %s)", replica_id, t.slot)

    def drain(self, replica_id: str, now: float) -> None:
        """Take new traffic away (HAProxy ``drain``), then SIGTERM: in-flight work finishes."""
        with self._lock:
            t = self._get(replica_id)
            if t.phase is ReplicaPhase.DRAINING:
                return
            self.api.set_state(t.slot, AdminState.DRAIN)
            t.process.terminate()
            t.phase, t.draining_since = ReplicaPhase.DRAINING, now
            log.info("draining %s (slot %s)", replica_id, t.slot)

    def remove(self, replica_id: str) -> None:
        """Drop a FAILED replica: kill it if it still runs, park and free its slot."""
        with self._lock:
            t = self._replicas.pop(replica_id, None)
            if t is None:
                return
            t.process.kill()
            t.process.wait(5.0)
            self._free(t)
            log.info("removed %s (%s)", replica_id, t.phase.value)

    def retire(self, replica_id: str, now: float) -> None:
        """Let go of a replica however it stands: FAILED ones are removed, others drained."""
        with self._lock:
            t = self._replicas.get(replica_id)
            if t is None or t.phase is ReplicaPhase.DRAINING:
                return
            if t.phase is ReplicaPhase.FAILED:
                self.remove(replica_id)
            else:
                self.drain(replica_id, now)

    # -- observation ------------------------------------------------------------------------

    def refresh(self, now: float) -> None:
        """Probe every replica and poll its process; forget replicas that finished draining."""
        with self._lock:
            current = list(self._replicas.items())
        probes = {rid: probe(self._client, t.process.url) for rid, t in current}
        with self._lock:
            for rid, t in current:
                if self._replicas.get(rid) is t:
                    self._update(t, probes[rid], now)
            ready = [t for _, t in current if t.rearm_at_ready and t.phase is ReplicaPhase.READY]
            for t in ready:
                t.rearm_at_ready = False
        self._rearm_keep_warm([t.process.url for t in ready])

    def replicas(self) -> tuple[ReplicaInfo, ...]:
        with self._lock:
            return tuple(t.info() for t in self._replicas.values())

    def replica(self, replica_id: str) -> ReplicaInfo:
        with self._lock:
            return self._get(replica_id).info()

    def backend(self) -> BackendStat:
        """HAProxy's own view of every slot (``show stat``)."""
        return self.api.show_stat()

    def in_rotation(self) -> tuple[ReplicaInfo, ...]:
        """Replicas HAProxy routes to right now (:func:`routed`)."""
        backend = self.backend()
        return tuple(r for r in self.replicas() if routed(backend, r))

    def process(self, replica_id: str) -> ReplicaProcess:
        """The process behind a replica (to wait for its exit code, or to signal it)."""
        with self._lock:
            return self._get(replica_id).process

    # -- internals --------------------------------------------------------------------------

    def _update(self, t: _Tracked, seen: Probe, now: float) -> None:
        rid = t.process.replica_id
        code = t.process.exit_code()
        if code is not None:
            if t.phase is ReplicaPhase.DRAINING:
                del self._replicas[rid]
                self._free(t)
                level = logging.INFO if code == 0 else logging.WARNING
                log.log(level, "%s exited %s after draining", rid, code)
            elif t.phase is not ReplicaPhase.FAILED:
                t.phase = ReplicaPhase.FAILED
                log.warning("%s died (exit %s) while %s", rid, code, t.role.value)
            return
        if seen.phase is not None:
            t.load, t.reason = seen.load, seen.reason
            if seen.phase is ReplicaPhase.DRAINING and t.draining_since is None:
                t.draining_since = now  # drained from outside (SIGTERM by someone else)
            if t.phase is not ReplicaPhase.DRAINING or seen.phase is ReplicaPhase.DRAINING:
                if seen.phase is not t.phase:
                    log.info("%s is %s (%s)", rid, seen.phase.value, seen.reported)
                if seen.phase is ReplicaPhase.READY and t.ready_at is None:
                    t.ready_at = now
                t.phase = seen.phase
            self._hold_slim(t)
        if t.draining_since is not None and now - t.draining_since > self.stop_timeout_s:
            log.warning("%s still running %.0fs after SIGTERM: killing it", rid, now - t.draining_since)
            t.process.kill()

    def _rearm_keep_warm(self, urls: Iterable[str]) -> None:
        """``POST /warmgate/keep-warm`` to replicas about to take their first traffic after
        idling since READY: they keep their model warm until it comes (warmgate/server/
        keepwarm.py). Called outside the lock. One that does not (logged) still takes its
        traffic; its first request pays the idle pause."""
        for url in urls:
            try:
                reply = self._client.post(url + "/warmgate/keep-warm")
            except httpx.TransportError as exc:
                log.warning("keep-warm not re-armed at %s: %s", url, exc)
                continue
            if reply.status_code != 202:
                log.warning("keep-warm not re-armed at %s: %d %s", url, reply.status_code, reply.text[:200])

    def _hold_slim(self, t: _Tracked) -> None:
        """A READY standby with nothing in flight (a replica reused on scale-in finishes its
        requests first) is held to the CPU quota until :meth:`promote`."""
        idle_standby = t.role is Role.STANDBY and t.phase is ReplicaPhase.READY and t.load.in_flight == 0
        if self.slim is not None and idle_standby and not t.slim:
            self.slim.hold(t.process.replica_id, t.process.pid)
            t.slim = True

    def _enter(self, t: _Tracked) -> None:
        """Put a replica's slot where its role says: rotation (gated), staged, or maint."""
        if t.role is Role.SERVING:
            self.api.admit(t.slot)
        elif t.role is Role.STAGED:
            self.api.stage(t.slot)

    def _free(self, t: _Tracked) -> None:
        self.api.set_state(t.slot, AdminState.MAINT)
        self._slots.release(t.slot)
        if self.slim is not None:
            self.slim.forget(t.process.replica_id)

    def _get(self, replica_id: str) -> _Tracked:
        try:
            return self._replicas[replica_id]
        except KeyError:
            raise FleetError(f"the fleet has no replica {replica_id!r} (already gone?)") from None
