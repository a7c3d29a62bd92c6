"""The burst families of docs/autoscaling.md: every seed of every family, worst seed shown.

Run from the repository root: ``python scripts/simulate_bursts.py [--seeds 8]
[--strategy NAME] [--design-jump X] [--hibernated N] [--hold-s S]
[--fast-path-backlog N --tick-s S] [--metric-window-s S] [--panic-threshold X]
[--scale-in-window-s S] [--target-per-replica RPS] [--recurring]``.
Deterministic. The cost ratios divide each seed's replica-hours by AWS target tracking with
min 2 on the same trace: at full price, and with hibernated standbys at their price.
Families run in a process pool (one per core); the figures do not depend on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from warmgate.autoscaling.bursts import FAMILIES, RECURRING, evaluate_all, format_families
from warmgate.autoscaling.scenario import (
    SimConfig,
    Strategy,
    burst_sizing,
    for_strategy,
    strategy_parameters,
)

# ScalingConfig fields a run may override, over what the strategy sets (the baseline keeps its own)
POLICY_KNOBS = ("metric_window_s", "panic_threshold", "scale_in_window_s", "target_per_replica")


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--strategy", choices=[s.value for s in Strategy], default=Strategy.MIN_2_SIZED.value)
    parser.add_argument("--design-jump", type=float, default=1.0, help="burst-sized: a jump always covered")
    parser.add_argument("--hibernated", type=int, default=0, help="burst-sized: hibernated standbys")
    parser.add_argument("--hold-s", type=float, default=0.0, help="burst-sized: hold a need this long")
    parser.add_argument("--fast-path-backlog", type=int, default=None, help="turn the fast path on")
    parser.add_argument("--tick-s", type=float, default=None, help="observation interval")
    for knob in POLICY_KNOBS:
        parser.add_argument(f"--{knob.replace('_', '-')}", type=float, default=None, help="the policy's")
    parser.add_argument("--recurring", action="store_true", help="recurring-burst hours, not the grid")
    args = parser.parse_args(argv)
    strategy = Strategy(args.strategy)
    base = SimConfig(hibernated=args.hibernated)
    knobs = {k: getattr(args, k) for k in POLICY_KNOBS if getattr(args, k) is not None}
    if args.design_jump != 1.0 or args.hold_s:
        sizing = dataclasses.replace(
            burst_sizing(base.replica, design_jump=args.design_jump), hold_s=args.hold_s
        )
        base = dataclasses.replace(base, scaling=dataclasses.replace(base.scaling, burst=sizing))
    config = for_strategy(strategy, base)
    # over what the strategy sets (the slim pool sets its own target and scale-in window)
    config = dataclasses.replace(config, scaling=dataclasses.replace(config.scaling, **knobs))
    if args.fast_path_backlog is not None:
        scaling = dataclasses.replace(config.scaling, fast_path_backlog=args.fast_path_backlog)
        config = dataclasses.replace(config, scaling=scaling)
    if args.tick_s is not None:
        config = dataclasses.replace(config, tick_s=args.tick_s)
    baseline = for_strategy(Strategy.MIN_2, SimConfig())
    print(f"- {strategy_parameters(strategy, base)}")
    if knobs:
        print(f"- the policy's {', '.join(f'{k} {v:g}' for k, v in knobs.items())}")
    if args.fast_path_backlog is not None:
        print(f"- fast path at a backlog of {args.fast_path_backlog}")
    if args.tick_s is not None:
        print(f"- observed every {args.tick_s:g} s")
    print(f"- baseline {strategy_parameters(Strategy.MIN_2, SimConfig())}\n")
    families = RECURRING if args.recurring else FAMILIES
    results = evaluate_all(config, baseline, tuple(range(args.seeds)), families)
    print(format_families(results), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run())
