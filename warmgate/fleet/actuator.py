"""The fleet's real processes and HAProxy as an :class:`~warmgate.autoscaling.actuation.Actuator`.

Each verb is one call on :class:`~warmgate.fleet.fleet.Fleet`; the sequence that calls them is
:func:`~warmgate.autoscaling.actuation.actuate`, the same one the simulator runs.

While a new model is staged (:mod:`warmgate.fleet.redeploy`), capacity the policy starts is
the new model's: a cold start or a claimed standby joins the STAGED generation (checked, held
out of rotation until the switch), never the old model's rotation.
"""

from __future__ import annotations

import logging

from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.slots import NoFreeSlot

log = logging.getLogger("warmgate.fleet")


class FleetActuator:
    """Serving replicas are processes in HAProxy's rotation; standbys are parked in ``maint``."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def remove(self, replica_id: str, now: float) -> None:
        self.fleet.remove(replica_id)

    def drain(self, replica_id: str, now: float) -> None:
        self.fleet.drain(replica_id, now)

    def promote(self, member_id: str, now: float) -> None:
        self.fleet.promote(member_id, self._serving_role())

    def cold_start(self, now: float) -> str | None:
        try:
            return self.fleet.launch(self._serving_role(), now)
        except NoFreeSlot as exc:
            log.warning("cannot start a replica: %s", exc)
            return None

    def park(self, replica_id: str, now: float) -> None:
        self.fleet.park(replica_id)

    def launched_at(self, replica_id: str) -> float:
        return self.fleet.replica(replica_id).started_at

    def start_standby(self, member_id: str, now: float) -> bool:
        try:
            self.fleet.launch(Role.STANDBY, now, replica_id=member_id)
        except NoFreeSlot as exc:
            log.warning("cannot start standby %s: %s", member_id, exc)
            return False
        return True

    def retire_standby(self, member_id: str, now: float) -> None:
        self.fleet.retire(member_id, now)

    def _serving_role(self) -> Role:
        return Role.STAGED if self.fleet.staging else Role.SERVING
