"""Run every :class:`~warmgate.autoscaling.scenario.Strategy` over one trace, side by side."""

from __future__ import annotations

import random
from dataclasses import dataclass

from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.report import SimReport, format_table
from warmgate.autoscaling.scenario import (
    DEFAULT_POOL,
    SimConfig,
    Strategy,
    for_strategy,
    strategy_parameters,
)
from warmgate.autoscaling.simulator import simulate
from warmgate.autoscaling.traces import Trace


@dataclass(frozen=True)
class Comparison:
    trace: str
    rows: tuple[tuple[Strategy, SimReport], ...]
    parameters: tuple[str, ...] = ()

    def report(self, strategy: Strategy) -> SimReport:
        return next(r for s, r in self.rows if s is strategy)

    def cost_ratio(self, strategy: Strategy, baseline: Strategy = Strategy.MIN_2) -> float:
        return self.report(strategy).replica_hours / self.report(baseline).replica_hours

    def priced_ratio(self, strategy: Strategy, baseline: Strategy = Strategy.MIN_2) -> float:
        """Tiered accounting (slim or hibernated standbys at their price) over the baseline's."""
        return self.report(strategy).priced_hours / self.report(baseline).replica_hours

    def table(self) -> str:
        named = [(s.value, r) for s, r in self.rows]
        header = "".join(f"- {line}\n" for line in self.parameters)
        return header + ("\n" if header else "") + format_table(named, baseline=Strategy.MIN_2.value)


def compare(trace: Trace, base: SimConfig, seed: int = 0, pool: PoolConfig = DEFAULT_POOL) -> Comparison:
    """Every strategy over the same trace; each run gets its own ``Random(seed)``."""
    rows = tuple((s, simulate(trace, for_strategy(s, base, pool), random.Random(seed))) for s in Strategy)
    parameters = tuple(strategy_parameters(s, base, pool) for s in Strategy)
    return Comparison(trace.name, rows, parameters)
