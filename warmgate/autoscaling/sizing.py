"""How many warm standbys to keep: learned from the jumps in load this fleet has seen.

The idea is the hybrid histogram of "Serverless in the Wild" (Shahrad et al., USENIX ATC '20),
applied to load instead of idle times: remember the distribution of *rate jumps* over the
horizon a standby must cover (claim + cold start), and keep just enough capacity for a high
quantile of it. Capacity already hot counts first, as Knative's target burst capacity does:
no standby is kept while the hot fleet's spare capacity covers the likely jump.

A jump is measured at every observation, in requests/s, as the short (panic-window) average
rate minus the lowest long (stable-window) average of the last ``horizon_s`` (the base); the
largest jump of each horizon-long window goes into the history, so one burst is one entry.
Jumps add to the base rather than multiply it: a fleet that has seen 2 → 24 requests/s
prepares for +22 requests/s, not for x12 of whatever it carries now.

Standbys = ``ceil((demand - usable(hot)) / usable(1))``, never negative, where
``demand = max(min(base + q, top), design_jump * base, base + target_burst_capacity)``,
``q`` is the ``quantile`` of the jump history, ``top`` the highest short rate the history
holds (a jump is prepared for up to a load the service has reached, not stacked on a
plateau) and ``usable(n) = n * replica_capacity * utilisation``.
Everything is a pure function of the observations: no clock, no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from warmgate.errors import ConfigError


@dataclass(frozen=True)
class BurstSizing:
    """Knobs of the standby sizing; ``ScalingConfig.burst`` turns it on."""

    replica_capacity: float  # requests/s one READY replica completes at most
    horizon_s: float = 70.0  # claim + cold start: how long a burst must be carried by standbys
    quantile: float = 0.99
    design_jump: float = 1.0  # a jump factor always covered (1: learn from traffic only)
    target_burst_capacity: float = 0.0  # spare requests/s always kept, as Knative's TBC
    utilisation: float = 0.9  # the share of capacity usable without waiting over the budget
    history: int = 256  # jumps remembered (one per horizon)
    # How long a need is held before fewer standbys are kept (at least one horizon, the
    # default). Longer keeps a READY standby through a dip of the base rate (Kubernetes HPA
    # holds scale-down 300 s), at the price of every standby kept that long after a need.
    hold_s: float = 0.0

    def __post_init__(self) -> None:
        if self.replica_capacity <= 0 or self.horizon_s <= 0 or self.history < 1 or self.hold_s < 0:
            raise ConfigError(
                "replica_capacity, horizon_s and history must be > 0 and hold_s >= 0, got "
                f"{self.replica_capacity}, {self.horizon_s}, {self.history}, {self.hold_s}"
            )
        if not 0.0 < self.quantile <= 1.0 or not 0.0 < self.utilisation <= 1.0:
            raise ConfigError(
                f"quantile and utilisation must be in (0, 1], got {self.quantile}, {self.utilisation}"
            )
        if self.design_jump < 1.0 or self.target_burst_capacity < 0:
            raise ConfigError(
                f"design_jump must be >= 1 and target_burst_capacity >= 0, got "
                f"{self.design_jump}, {self.target_burst_capacity}"
            )


@dataclass(frozen=True)
class JumpState:
    """What the sizing remembers: long averages of the last horizon, the open window's
    largest jump, and the closed windows' jumps."""

    bases: tuple[tuple[float, float], ...] = ()  # (at, long average rate)
    window_start: float | None = None
    window_peak: float = 0.0
    jumps: tuple[float, ...] = ()
    needs: tuple[tuple[float, int], ...] = ()  # (at, standbys needed) over the last horizon
    peaks: tuple[float, ...] = ()  # the highest short rate of each closed window
    window_top: float = 0.0  # the open window's highest short rate


def observe_jump(
    state: JumpState, sizing: BurstSizing, now: float, short_rate: float, long_rate: float
) -> JumpState:
    """Record one observation's averages; close the window once ``horizon_s`` has passed."""
    bases = (*(b for b in state.bases if b[0] > now - sizing.horizon_s), (now, long_rate))
    peak = max(state.window_peak, short_rate - min(rate for _, rate in bases))
    top = max(state.window_top, short_rate)
    start = now if state.window_start is None else state.window_start
    if now - start < sizing.horizon_s:
        return dataclasses.replace(state, bases=bases, window_start=start, window_peak=peak, window_top=top)
    return dataclasses.replace(
        state,
        bases=bases,
        window_start=now,
        window_peak=0.0,
        window_top=0.0,
        jumps=(*state.jumps, peak)[-sizing.history :],
        peaks=(*state.peaks, top)[-sizing.history :],
    )


def highest_rate(state: JumpState) -> float:
    """The highest short rate the history holds: the load this service has reached."""
    return max((*state.peaks, state.window_top))


def keep_standbys(state: JumpState, sizing: BurstSizing, now: float, hot: int) -> tuple[JumpState, int]:
    """:func:`standbys_needed` now, held at the highest need of the last ``horizon_s`` (or
    ``hold_s``, if longer) so that noise in the base rate does not retire a standby that the next
    observation wants back."""
    held = max(sizing.horizon_s, sizing.hold_s)
    needs = (
        *(n for n in state.needs if n[0] > now - held),
        (now, standbys_needed(state, sizing, hot)),
    )
    return dataclasses.replace(state, needs=needs), max(n for _, n in needs)


def likely_jump(state: JumpState, sizing: BurstSizing) -> float:
    """The ``quantile`` of the jumps seen (the open window's largest too), requests/s."""
    seen = sorted((*state.jumps, state.window_peak))
    index = min(len(seen) - 1, math.ceil(sizing.quantile * len(seen)) - 1)
    return max(0.0, seen[index])


def base_rate(state: JumpState) -> float:
    """The lowest long average of the last horizon: what the next jump starts from."""
    return min((rate for _, rate in state.bases), default=0.0)


def standbys_needed(state: JumpState, sizing: BurstSizing, hot: int) -> int:
    """Standbys that, with ``hot`` replicas, carry the likely jump from the base rate. The
    base, not the rate now: while a burst is on, the fleet scales for it, and the pool is
    for the next jump."""
    rate = base_rate(state)
    usable = sizing.replica_capacity * sizing.utilisation
    learned = min(rate + likely_jump(state, sizing), highest_rate(state))
    demand = max(learned, sizing.design_jump * rate, rate + sizing.target_burst_capacity)
    return max(0, math.ceil((demand - hot * usable) / usable - 1e-9))
