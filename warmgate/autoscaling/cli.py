"""``warmgate simulate`` and ``warmgate render``: registered by :func:`add_commands`.

``warmgate/cli.py`` calls ``add_commands(subparsers)``; ``python -m warmgate.autoscaling``
builds its own parser with the same function. Nothing here runs at import time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

from warmgate.autoscaling.calibrate import fit_sweep_rows, replica_from_metrics
from warmgate.autoscaling.compare import compare
from warmgate.autoscaling.model import TargetMetric
from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.render import Engine, RenderOptions, render
from warmgate.autoscaling.render.options import WarmPoolState
from warmgate.autoscaling.report import format_report
from warmgate.autoscaling.scenario import (
    DEFAULT_POOL,
    DEFAULT_SCALING,
    SERVED_BATCHING_GAIN,
    ReplicaModel,
    SimConfig,
    SlimStandbys,
    Strategy,
    batching_curve,
    for_strategy,
)
from warmgate.autoscaling.simulator import simulate
from warmgate.autoscaling.traces import Trace, TraceKind, load_azure_llm_csv, load_csv, synthetic


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``simulate`` and ``render`` on a parent parser's subparsers."""
    _add_simulate(subparsers)
    _add_render(subparsers)


def _add_simulate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replica, pool = ReplicaModel(), DEFAULT_POOL
    sim = SimConfig()
    p = subparsers.add_parser(
        "simulate",
        help="replay a request trace through the scaling policy and warm pool",
        description="Step the autoscaling policy over a trace; report SLA misses, "
        "cold-start exposure and replica-hours; optionally compare every strategy.",
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--trace",
        choices=[k.value for k in TraceKind],
        default=TraceKind.SPIKE.value,
        help="synthetic trace (default: spike)",
    )
    source.add_argument(
        "--csv",
        type=Path,
        help="CSV trace: 'timestamp,requests' counts, or the Azure LLM format "
        "(TIMESTAMP,ContextTokens,GeneratedTokens, one row per request)",
    )
    p.add_argument("--time-scale", type=float, default=1.0, help="Azure CSV: stretch time by this")
    p.add_argument("--seed", type=int, default=0, help="seed for traces and failures")
    p.add_argument("--compare", action="store_true", help="table of every strategy")
    p.add_argument(
        "--strategy",
        choices=[s.value for s in Strategy],
        default=Strategy.MIN_2_SIZED.value,
        help="the strategy of a single run (default: min-2-burst-sized)",
    )
    p.add_argument("--plot", type=Path, help="write a PNG of load, replicas and latency here")
    p.add_argument(
        "--metric",
        choices=[m.value for m in TargetMetric],
        default=DEFAULT_SCALING.metric.value,
    )
    p.add_argument(
        "--target",
        type=float,
        default=sim.scaling.target_per_replica,
        help="target per hot replica (in-flight, or requests/s)",
    )
    p.add_argument("--max-replicas", type=int, default=DEFAULT_SCALING.max_replicas)
    p.add_argument(
        "--concurrency", type=int, default=replica.concurrency, help="requests served at once at light load"
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=sim.replica.concurrency,
        help="requests a replica batches together under a queue (<= --concurrency: no batching)",
    )
    p.add_argument(
        "--batching-gain",
        type=float,
        default=SERVED_BATCHING_GAIN,
        help="throughput at --max-batch over throughput at --concurrency (measured: "
        'scripts/bench_ab.py --a="--max-batch 1", docs/benchmarks.md "Batching gain")',
    )
    p.add_argument(
        "--hibernated",
        type=int,
        default=0,
        help="min-2-burst-sized: hibernated standbys (an EC2 warm pool in Hibernated state)",
    )
    p.add_argument(
        "--slim-price",
        type=float,
        default=SlimStandbys.price,
        help="min-2-slim-pool: a slim standby's price as a share of a replica's (its requests)",
    )
    p.add_argument(
        "--slim-resize-s",
        type=float,
        default=SlimStandbys.resize_s,
        help="min-2-slim-pool: seconds to resize a claimed slim standby back up",
    )
    p.add_argument("--queue-depth", type=int, default=replica.queue_depth)
    p.add_argument("--service-s", type=float, default=replica.service_s)
    p.add_argument("--provision-s", type=float, default=replica.provision_s)
    p.add_argument("--load-s", type=float, default=replica.load_s)
    p.add_argument("--warmup-s", type=float, default=replica.warmup_s)
    p.add_argument("--claim-s", type=float, default=replica.claim_s)
    p.add_argument("--start-failure-rate", type=float, default=replica.start_failure_rate)
    p.add_argument(
        "--latency-budget",
        type=float,
        default=SimConfig().latency_budget_s,
        help="the SLA: longest a request may wait (latency minus its own service time)",
    )
    p.add_argument("--tick-s", type=float, default=SimConfig().tick_s, help="how often the policy observes")
    p.add_argument(
        "--fast-path-backlog",
        type=int,
        default=0,
        help="warmgate's policy panics at once when this many requests wait and the backlog grew (0: off)",
    )
    p.add_argument(
        "--cold-start-sigma",
        type=float,
        default=0.0,
        help="log-normal spread of every start time (0: constant)",
    )
    p.add_argument(
        "--replica-metrics",
        type=Path,
        default=None,
        help="a READY replica's /metrics text (curl URL/metrics > FILE): load, warmup and "
        "service times per batch size replace the flags'",
    )
    p.add_argument(
        "--service-sweep",
        type=Path,
        default=None,
        help="a calibration sweep's rows (JSON [sent_at, latency_s, status], from "
        "python -m warmgate.fleet.loadgen): service time = fixed overhead + a curve of the "
        "requests outstanding x a log-normal spread, fitted to them (docs/autoscaling.md, Calibration)",
    )
    p.add_argument("--pool-size", type=int, default=pool.target_size)
    p.add_argument(
        "--max-prepared",
        type=_int_or_none,
        default=pool.max_prepared,
        help="hot target + standbys the pool tops up to (EC2 MaxGroupPreparedCapacity); "
        "'none' keeps --pool-size standbys whatever the fleet size",
    )
    p.set_defaults(func=run_simulate)


def _add_render(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = RenderOptions()
    p = subparsers.add_parser(
        "render",
        help="print SageMaker, ECS or Kubernetes autoscaling configuration",
        description="Render the engine's configuration: JSON (API call -> arguments) for "
        "SageMaker and ECS, multi-document YAML for Kubernetes.",
    )
    p.add_argument("engine", choices=[e.value for e in Engine])
    p.add_argument("--name", default=defaults.name)
    p.add_argument("--image", default=defaults.image)
    p.add_argument("--port", type=int, default=defaults.port)
    p.add_argument("--min-hot", type=int, default=DEFAULT_SCALING.min_hot)
    p.add_argument("--max-replicas", type=int, default=DEFAULT_SCALING.max_replicas)
    p.add_argument(
        "--scale-in-window-s",
        type=float,
        default=DEFAULT_SCALING.scale_in_window_s,
        help="the policy's scale-in window: the engines' scale-in cooldown / stabilisation window",
    )
    p.add_argument(
        "--invocations-per-replica",
        type=float,
        default=DEFAULT_SCALING.target_per_replica,
        help="requests per second per replica (SageMaker/ALB targets are this x 60)",
    )
    p.add_argument(
        "--in-flight-per-replica",
        type=float,
        default=defaults.in_flight_per_replica,
        help="in-flight requests per replica (the Kubernetes HPA's custom metric target)",
    )
    p.add_argument("--startup-s", type=int, default=defaults.startup_s)
    p.add_argument("--drain-delay", type=int, default=defaults.drain_delay_s)
    p.add_argument("--timeout", type=int, default=defaults.timeout_s)
    p.add_argument("--instance-type", default=defaults.instance_type)
    p.add_argument("--alb-resource-label", default=defaults.alb_resource_label)
    p.add_argument(
        "--pool-size",
        type=int,
        default=DEFAULT_POOL.target_size,
        help="standbys (the Kubernetes standby Deployment's replicas; EC2 with --max-prepared none)",
    )
    p.add_argument(
        "--pool-min-size",
        type=int,
        default=DEFAULT_POOL.min_size,
        help="EC2 warm pool MinSize: standbys kept whatever the group's size",
    )
    p.add_argument(
        "--max-prepared",
        type=_int_or_none,
        default=DEFAULT_POOL.max_prepared,
        help="EC2 MaxGroupPreparedCapacity: hot + standby instances ('none': --pool-size standbys)",
    )
    p.add_argument(
        "--pool-state",
        choices=[s.value for s in WarmPoolState],
        default=defaults.pool_state.value,
        help="EC2 warm pool instance state (Hibernated needs hibernation-capable instances and AMI)",
    )
    p.add_argument("--region", default=defaults.region, help="AWS region in the ARNs")
    p.add_argument("--account-id", default=defaults.account_id, help="AWS account in the ARNs")
    p.add_argument("--asg-name", default=None, help="the ECS hosts' Auto Scaling group (default NAME-ecs)")
    p.add_argument("--ec2-instance-type", default=defaults.ec2_instance_type, help="the ECS hosts' type")
    p.add_argument(
        "--subnet",
        dest="subnets",
        action="append",
        help="a subnet of the ECS hosts and tasks (repeat for several; default a placeholder)",
    )
    p.add_argument(
        "--security-group",
        dest="security_groups",
        action="append",
        help="a security group of the ECS tasks (repeat for several; default a placeholder)",
    )
    p.add_argument(
        "--inference-components",
        action="store_true",
        help="SageMaker: an inference-component endpoint (a floor of model copies and instances)",
    )
    p.add_argument(
        "--slim-standby-cores",
        type=float,
        default=None,
        help="Kubernetes: standbys resized in place to this many cores while they wait (slim "
        "standbys; the pool controller may patch pods/resize)",
    )
    p.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    p.set_defaults(func=run_render)


def _int_or_none(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def _trace(args: argparse.Namespace) -> Trace:
    rng = random.Random(args.seed)
    if args.csv is None:
        return synthetic(TraceKind(args.trace), rng)
    if args.time_scale != 1.0:
        return load_azure_llm_csv(args.csv, time_scale=args.time_scale)
    return load_csv(args.csv, rng)


def sim_config(args: argparse.Namespace) -> SimConfig:
    """The :class:`SimConfig` (strategy not yet applied) that the flags describe."""
    replica = ReplicaModel(
        concurrency=args.concurrency,
        service_s=args.service_s,
        queue_depth=args.queue_depth,
        provision_s=args.provision_s,
        load_s=args.load_s,
        warmup_s=args.warmup_s,
        claim_s=args.claim_s,
        start_failure_rate=args.start_failure_rate,
        cold_start_sigma=args.cold_start_sigma,
    )
    if args.max_batch > args.concurrency:
        curve = batching_curve(args.concurrency, args.service_s, args.batching_gain, args.max_batch)
        replica = dataclasses.replace(replica, concurrency=args.max_batch, service_curve=curve)
    if args.replica_metrics is not None:
        replica = replica_from_metrics(args.replica_metrics.read_text(), replica)
    if args.service_sweep is not None:
        fit = fit_sweep_rows(json.loads(args.service_sweep.read_text()))
        replica = fit.replica(replica, replica.concurrency)
    scaling = dataclasses.replace(
        DEFAULT_SCALING,
        metric=TargetMetric(args.metric),
        target_per_replica=args.target,
        max_replicas=args.max_replicas,
        fast_path_backlog=args.fast_path_backlog,
    )
    return SimConfig(
        scaling=scaling,
        replica=replica,
        latency_budget_s=args.latency_budget,
        tick_s=args.tick_s,
        hibernated=args.hibernated,
        slim=SlimStandbys(price=args.slim_price, resize_s=args.slim_resize_s),
    )


def _pool(args: argparse.Namespace) -> PoolConfig:
    return dataclasses.replace(
        DEFAULT_POOL,
        target_size=args.pool_size,
        max_size=max(DEFAULT_POOL.max_size, args.pool_size),
        max_prepared=args.max_prepared,
    )


def run_simulate(args: argparse.Namespace) -> int:
    trace = _trace(args)
    base = sim_config(args)
    pool = _pool(args)
    print(f"# trace {trace.name}: {len(trace.arrivals)} requests over {trace.duration_s:.0f} s")
    if args.compare:
        result = compare(trace, base, seed=args.seed, pool=pool)
        print(result.table())
        runs = [(s.value, r) for s, r in result.rows]
    else:
        strategy = Strategy(args.strategy)
        report = simulate(trace, for_strategy(strategy, base, pool), random.Random(args.seed))
        print(format_report(report))
        runs = [(strategy.value, report)]
    if args.plot is not None:
        from warmgate.autoscaling.plot import plot_reports

        plot_reports(runs, args.plot, base.latency_budget_s, title=f"trace: {trace.name}")
        print(f"# plot written to {args.plot}", file=sys.stderr)
    return 0


def run_render(args: argparse.Namespace) -> int:
    scaling = dataclasses.replace(
        DEFAULT_SCALING,
        min_hot=args.min_hot,
        max_replicas=args.max_replicas,
        target_per_replica=args.invocations_per_replica,
        scale_in_window_s=args.scale_in_window_s,
    )
    pool = dataclasses.replace(
        DEFAULT_POOL,
        target_size=args.pool_size,
        min_size=args.pool_min_size,
        max_size=max(DEFAULT_POOL.max_size, args.pool_size),
        max_prepared=args.max_prepared,
    )
    options = RenderOptions.from_scaling(
        scaling,
        pool,
        name=args.name,
        image=args.image,
        port=args.port,
        in_flight_per_replica=args.in_flight_per_replica,
        startup_s=args.startup_s,
        drain_delay_s=args.drain_delay,
        timeout_s=args.timeout,
        instance_type=args.instance_type,
        alb_resource_label=args.alb_resource_label,
        pool_state=WarmPoolState(args.pool_state),
        region=args.region,
        account_id=args.account_id,
        asg_name=args.asg_name,
        ec2_instance_type=args.ec2_instance_type,
        inference_components=args.inference_components,
        slim_standby_cores=args.slim_standby_cores,
        **({"subnets": tuple(args.subnets)} if args.subnets else {}),
        **({"security_groups": tuple(args.security_groups)} if args.security_groups else {}),
    )
    text = render(Engine(args.engine), options)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m warmgate.autoscaling simulate|render ...`` until ``warmgate`` wires these."""
    parser = argparse.ArgumentParser(prog="python -m warmgate.autoscaling")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code
