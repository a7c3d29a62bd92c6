"""The burst families of docs/autoscaling.md: every seed of every family, worst seed shown.

Run from the repository root: ``python scripts/simulate_bursts.py [--seeds 8]
[--fast-path-backlog N]``. Deterministic. The cost ratio divides each seed's replica-hours by
AWS target tracking with min 2 on the same trace.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from warmgate.autoscaling.bursts import FAMILIES, evaluate_family, format_families
from warmgate.autoscaling.scenario import SimConfig, Strategy, for_strategy, strategy_parameters


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default=Strategy.MIN_2_POOL.value)
    parser.add_argument("--fast-path-backlog", type=int, default=None, help="turn the fast path on")
    parser.add_argument("--tick-s", type=float, default=None, help="observation interval")
    args = parser.parse_args(argv)
    strategy = Strategy(args.strategy)
    config = for_strategy(strategy, SimConfig())
    if args.fast_path_backlog is not None:
        scaling = dataclasses.replace(config.scaling, fast_path_backlog=args.fast_path_backlog)
        config = dataclasses.replace(config, scaling=scaling)
    if args.tick_s is not None:
        config = dataclasses.replace(config, tick_s=args.tick_s)
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    print(f"- {strategy_parameters(strategy, SimConfig())}")
    if args.fast_path_backlog is not None:
        print(f"- fast path at a backlog of {args.fast_path_backlog}")
    if args.tick_s is not None:
        print(f"- observed every {args.tick_s:g} s")
    print(f"- baseline {strategy_parameters(Strategy.MIN_2, SimConfig())}\n")
    seeds = tuple(range(args.seeds))
    print(format_families([evaluate_family(f, config, baseline, seeds) for f in FAMILIES]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())
