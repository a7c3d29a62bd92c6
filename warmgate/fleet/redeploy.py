"""A model change in the running fleet: blue/green, decided by the match key.

``warmgate fleet`` serves the model directory it was started with. On SIGHUP (the Unix
convention for "reload") :meth:`Redeploy.request` asks for the directory to be read again:
its :class:`~warmgate.fleet.store.MatchKey` (:func:`~warmgate.fleet.match.fleet_match_key`)
is recomputed on a worker thread, so hashing big weights never stalls the control loop. The
directory may be a symlink: it is resolved once per reload and replicas are launched from
the resolved path, so pointing the symlink at a new directory is an atomic swap, and
replicas of the old model keep reading their own files.

When the key changed (:meth:`Redeploy.step`, once per control tick):

1. **stage**: the fleet launches from the new spec from now on
   (:meth:`~warmgate.fleet.fleet.Fleet.stage`); this fleet's standbys of the old key are
   drained in the pool store and stopped, never promoted (:meth:`StoredPool.rekey`), and the
   pool tops up standbys of the new key;
2. **warm**: STAGED replicas of the new model start, as many as the old model serves (at
   least the floor). HAProxy checks them but sends them nothing. The old model keeps serving
   at full capacity, and the policy keeps scaling: what it starts meanwhile is new-model
   capacity (STAGED);
3. **switch**: once that many STAGED replicas are READY and HAProxy's own check passed, one
   runtime API line puts them all in rotation and sets every old replica to ``drain`` (no new
   requests; in-flight ones finish); then the old replicas get SIGTERM;
4. **fail safe**: a STAGED replica that FAILED (the new model does not load), or no switch
   within ``timeout_s``, cancels the redeploy: the STAGED replicas are removed, the pool goes
   back to the old key, and the old model goes on serving. The reason is logged.

Metrics (on the fleet's registry): ``warmgate_fleet_model_info{model_digest,match_key}`` (1
for the key being served), ``warmgate_fleet_model_switch_timestamp_seconds`` (the loop's
clock, read after the switch's runtime API line returned), ``warmgate_fleet_redeploys_total
{outcome}`` (switched, failed, cancelled), ``warmgate_fleet_redeploy_in_progress`` and
``warmgate_fleet_redeploy_seconds`` (change seen → switch).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from warmgate.autoscaling.model import ReplicaPhase
from warmgate.errors import ConfigError, WarmgateError
from warmgate.fleet.fleet import Fleet, ReplicaInfo, Role
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.runtime_api import BackendStat
from warmgate.fleet.slots import NoFreeSlot
from warmgate.fleet.store import MatchKey
from warmgate.fleet.stored_pool import StoredPool

log = logging.getLogger("warmgate.fleet")

Clock = Callable[[], float]
Keyer = Callable[[ReplicaSpec], MatchKey]
_ALIVE = (ReplicaPhase.READY, ReplicaPhase.WARMING)


class RedeployMetrics:
    """The redeploy's metrics, registered on the fleet's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.model = Gauge(
            "warmgate_fleet_model_info",
            "the model the fleet serves: 1 for its match key",
            ["model_digest", "match_key"],
            registry=registry,
        )
        self.switched_at = Gauge(
            "warmgate_fleet_model_switch_timestamp_seconds",
            "when HAProxy was switched to the model being served (0: the model it started with)",
            registry=registry,
        )
        self.redeploys = Counter(
            "warmgate_fleet_redeploys", "model changes, by outcome", ["outcome"], registry=registry
        )
        self.in_progress = Gauge(
            "warmgate_fleet_redeploy_in_progress", "1 while a new model is staged", registry=registry
        )
        self.seconds = Histogram(
            "warmgate_fleet_redeploy_seconds",
            "from a changed key seen to the switch",
            buckets=(1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0),
            registry=registry,
        )
        for outcome in ("switched", "failed", "cancelled"):
            self.redeploys.labels(outcome)

    def serve(self, key: MatchKey, previous: MatchKey | None = None) -> None:
        if previous is not None:
            self.model.remove(previous.model_digest, previous.digest)
        self.model.labels(key.model_digest, key.digest).set(1)


def staged_surplus(replicas: Iterable[ReplicaInfo]) -> list[ReplicaInfo]:
    """The STAGED replicas the policy must count: those beyond one per live serving replica
    (the policy's own starts while a new model warms), shown as WARMING — they are not hot
    for the traffic the old model serves, and counting them stops the policy starting more."""
    seen = tuple(replicas)
    live = sum(1 for r in seen if r.role is Role.SERVING and r.phase in _ALIVE)
    staged = sorted(
        (r for r in seen if r.role is Role.STAGED and r.phase in _ALIVE), key=lambda r: r.started_at
    )
    return [dataclasses.replace(r, phase=ReplicaPhase.WARMING) for r in staged[live:]]


def checked_up(info: ReplicaInfo, backend: BackendStat) -> bool:
    """HAProxy checked this held-out replica and its ``/ping`` passed (status ``DRAIN``)."""
    server = backend.server(info.slot)
    return server.status == "DRAIN" and server.check_status.startswith("L7OK") and server.port == info.port


class Redeploy:
    """Watches for model changes (on request) and rolls the fleet over, blue/green."""

    def __init__(
        self,
        fleet: Fleet,
        served: MatchKey,
        pool: StoredPool | None,
        *,
        model_dir: Path,
        floor: int,
        registry: CollectorRegistry,
        clock: Clock,
        timeout_s: float = 600.0,
        keyer: Keyer = fleet_match_key,
    ) -> None:
        self.fleet = fleet
        self.pool = pool
        self.floor = floor
        self.timeout_s = timeout_s
        self.metrics = RedeployMetrics(registry)
        self._model_dir = model_dir  # as the operator named it: maybe a symlink
        self._base = fleet.spec
        self._served = served
        self._staged: MatchKey | None = None
        self._since = 0.0
        self._clock = clock
        self._keyer = keyer
        self._requested = False
        self._pending: Future[tuple[ReplicaSpec, MatchKey]] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warmgate-model-key")
        self.metrics.serve(served)

    @property
    def served(self) -> MatchKey:
        """The key of the model in HAProxy's rotation."""
        return self._served

    @property
    def staged(self) -> MatchKey | None:
        """The key of the model being warmed, if any."""
        return self._staged

    def request(self) -> None:
        """Read the model directory again at the next tick. Safe in a signal handler: it only
        sets a flag."""
        self._requested = True

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def step(self, now: float) -> None:
        """One tick: pick up a finished key computation, then cancel, warm or switch."""
        self._poll(now)
        if self._staged is None:
            return
        replicas = self.fleet.replicas()
        staged = [r for r in replicas if r.role is Role.STAGED]
        failed = next((r for r in staged if r.phase is ReplicaPhase.FAILED), None)
        if failed is not None:
            why = failed.reason or f"its process exited; see {self.fleet.process(failed.replica_id).log_path}"
            self._cancel(now, "failed", f"{failed.replica_id} of the new model failed: {why}")
            return
        if now - self._since > self.timeout_s:
            self._cancel(now, "failed", f"the new model was not READY within {self.timeout_s:g}s")
            return
        live = [r for r in replicas if r.role is Role.SERVING and r.phase in _ALIVE]
        need = max(self.floor, len(live))
        alive = sum(1 for r in staged if r.phase in _ALIVE)
        for _ in range(need - alive):
            try:
                self.fleet.launch(Role.STAGED, now)
            except NoFreeSlot as exc:
                log.warning("redeploy: cannot start a replica of the new model: %s", exc)
                break
        backend = self.fleet.backend()
        ready = [r for r in staged if r.phase is ReplicaPhase.READY and checked_up(r, backend)]
        if len(ready) >= need:
            self._switch(now)

    # -- internals --------------------------------------------------------------------------

    def _resolve(self) -> tuple[ReplicaSpec, MatchKey]:
        """The spec of the model directory as it is now (symlinks resolved) and its key."""
        real = Path(os.path.realpath(self._model_dir))
        if not real.is_dir():
            raise ConfigError(f"the model directory {self._model_dir} ({real}) is not a directory")
        spec = dataclasses.replace(self._base, model_dir=real)
        return spec, self._keyer(spec)

    def _poll(self, now: float) -> None:
        if self._pending is None and self._requested:
            self._requested = False
            log.info("reload requested: reading the model directory %s", self._model_dir)
            self._pending = self._executor.submit(self._resolve)
        if self._pending is None or not self._pending.done():
            return
        pending, self._pending = self._pending, None
        try:
            spec, key = pending.result()
        except (WarmgateError, OSError) as exc:
            log.error(
                "redeploy: cannot read the model directory %s: %s; still serving %s",
                self._model_dir,
                exc,
                self._served,
            )
            self.metrics.redeploys.labels("failed").inc()
            return
        self._consider(spec, key, now)

    def _consider(self, spec: ReplicaSpec, key: MatchKey, now: float) -> None:
        if key == self._staged:
            log.info("redeploy: %s is already being rolled out", key)
        elif key == self._served:
            if self._staged is not None:
                self._cancel(now, "cancelled", f"the model directory is back to the served model {key}")
            else:
                log.info("redeploy: the model is unchanged (%s): nothing to do", key)
        else:
            if self._staged is not None:
                self._cancel(now, "cancelled", f"superseded by {key}")
            self._begin(spec, key, now)

    def _begin(self, spec: ReplicaSpec, key: MatchKey, now: float) -> None:
        self.fleet.stage(spec)
        reason = f"model changed: {self._served} -> {key}"
        drained = self.pool.rekey(key, reason) if self.pool is not None else ()
        self._staged, self._since = key, now
        self.metrics.in_progress.set(1)
        log.info(
            "redeploy: model changed %s -> %s (%s); drained old standbys %s; warming the new model "
            "while the old one serves",
            self._served,
            key,
            spec.model_dir,
            list(drained),
        )

    def _cancel(self, now: float, outcome: str, reason: str) -> None:
        removed = self.fleet.unstage()
        if self.pool is not None:
            self.pool.rekey(self._served, f"redeploy {outcome}: {reason}")
        level = logging.ERROR if outcome == "failed" else logging.WARNING
        log.log(
            level,
            "redeploy %s: %s; removed %s; still serving %s",
            outcome,
            reason,
            list(removed),
            self._served,
        )
        self._staged = None
        self.metrics.in_progress.set(0)
        self.metrics.redeploys.labels(outcome).inc()

    def _switch(self, now: float) -> None:
        assert self._staged is not None
        done = self.fleet.switch(now)
        switched_at = self._clock()
        old, self._served, self._staged = self._served, self._staged, None
        self.metrics.serve(self._served, old)
        self.metrics.switched_at.set(switched_at)
        self.metrics.redeploys.labels("switched").inc()
        self.metrics.in_progress.set(0)
        self.metrics.seconds.observe(switched_at - self._since)
        log.info(
            "redeploy: switched to %s at %.3f (generation %d): in rotation %s; draining %s of %s",
            self._served,
            switched_at,
            done.generation,
            list(done.admitted),
            list(done.retired),
            old,
        )
