"""``warmgate fleet``: real replicas behind HAProxy, kept at the policy's floor, until a signal.

``warmgate/cli.py`` registers it with :func:`add_fleet_command`; ``python -m
warmgate.fleet ARGS`` runs the same command on its own. Nothing runs at import.

SIGHUP reads ``--model-dir`` again and, if the model changed, redeploys blue/green
(:mod:`warmgate.fleet.redeploy`). SIGINT and SIGTERM drain the fleet and exit.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from prometheus_client import start_http_server

from warmgate.autoscaling.model import ScalingConfig
from warmgate.autoscaling.pool import PoolConfig
from warmgate.autoscaling.sizing import BurstSizing
from warmgate.errors import ConfigError
from warmgate.fleet.control import ControlLoop
from warmgate.fleet.cpu_quota import open_quota
from warmgate.fleet.fleet import Fleet, Role
from warmgate.fleet.haproxy_config import HaproxySettings
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.redeploy import Redeploy
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import MatchKey, open_store
from warmgate.fleet.store.open import redact
from warmgate.fleet.stored_pool import StoredPool

log = logging.getLogger("warmgate.fleet")


def add_fleet_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``fleet`` on a parent parser's subparsers (``set_defaults(func=...)``)."""
    p = subparsers.add_parser(
        "fleet",
        help="run a local fleet: replica processes behind HAProxy, steered by the scaling policy",
        description="Start HAProxy on --port (active checks on /ping) and --replicas `warmgate serve` "
        "processes behind it, plus --pool warm standbys parked out of rotation; keep at least "
        "--min-hot READY replicas, replacing failed ones from the pool first. SIGHUP reads "
        "--model-dir again and, if the model changed, switches to it blue/green once its "
        "replicas are READY (docs/fleet.md). SIGINT/SIGTERM drains every replica, then stops HAProxy.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        required=True,
        help="model directory every replica serves; may be a symlink, re-read on SIGHUP",
    )
    p.add_argument("--replicas", type=int, default=2, help="replicas started in rotation at once")
    p.add_argument("--port", type=int, default=8080, help="HAProxy's frontend port")
    p.add_argument("--bind", default="127.0.0.1", help="HAProxy's frontend address")
    p.add_argument(
        "--pool",
        type=int,
        default=0,
        help="warm standbys kept READY out of rotation (with --burst-capacity: at most this many)",
    )
    p.add_argument(
        "--burst-capacity",
        type=float,
        default=None,
        metavar="RPS",
        help="size the pool from the request-rate jumps the fleet sees (the simulator's default "
        "strategy, min-2-burst-sized; docs/autoscaling.md): requests/s one replica completes at most",
    )
    p.add_argument(
        "--burst-horizon-s",
        type=float,
        default=BurstSizing.horizon_s,
        help="with --burst-capacity: how long standbys must carry a jump (a claim + a cold start)",
    )
    add_standby_options(p)
    p.add_argument("--min-hot", type=int, default=2, help="floor of READY replicas in rotation")
    p.add_argument("--max-replicas", type=int, default=8, help="most replicas in rotation")
    p.add_argument(
        "--target-in-flight", type=float, default=3.0, help="in-flight requests per hot replica to aim for"
    )
    p.add_argument("--scale-in-window-s", type=float, default=60.0, help="stable window before scaling in")
    p.add_argument("--drain-delay-s", type=float, default=1.0, help="each replica's --drain-delay-s")
    p.add_argument("--check-inter-ms", type=int, default=200, help="HAProxy /ping check interval")
    p.add_argument(
        "--max-conn-per-replica",
        type=int,
        default=None,
        help="HAProxy maxconn per replica; beyond it requests queue in HAProxy (counted as demand)",
    )
    p.add_argument("--stats-port", type=int, default=None, help="also serve HAProxy's stats page here")
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve the fleet's and pool's Prometheus metrics on this port (docs/fleet.md)",
    )
    p.add_argument(
        "--pool-store",
        default=None,
        metavar="URL",
        help="where the pool's books live (docs/pool-store.md): a SQLite file (path, sqlite:///PATH, "
        "or sqlite:// in memory) or postgresql://... shared by several fleets (default: "
        "WORKDIR/pool.db)",
    )
    p.add_argument(
        "--pool-lease-ttl-s", type=float, default=30.0, help="this fleet's lease in the pool store"
    )
    p.add_argument("--tick-s", type=float, default=0.25, help="control loop period")
    p.add_argument(
        "--redeploy-timeout-s",
        type=float,
        default=600.0,
        help="after SIGHUP, how long the new model may take to be READY before the redeploy is "
        "cancelled (the old model keeps serving)",
    )
    p.add_argument(
        "--workdir", type=Path, default=None, help="haproxy.cfg, socket and logs (default: a temp dir)"
    )
    p.add_argument("--haproxy", default=None, help="HAProxy binary (default: haproxy on PATH)")
    p.add_argument(
        "--replica-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra `warmgate serve` flag for every replica, repeatable (e.g. --replica-arg=--max-batch=8)",
    )
    p.set_defaults(func=run_fleet)


def add_standby_options(p: argparse.ArgumentParser) -> None:
    """How the warm pool sizes, refills and holds its standbys (``warmgate fleet`` and
    ``scripts/fleet_replay.py``): read back by :func:`standby_pool_config` and ``open_quota``."""
    p.add_argument(
        "--max-prepared",
        type=int,
        default=None,
        metavar="N",
        help="keep N - (replicas in rotation) standbys, at most --pool (EC2 warm pools' "
        "MaxGroupPreparedCapacity): the pool refills as the fleet scales back in",
    )
    p.add_argument(
        "--reuse-on-scale-in",
        action="store_true",
        help="a replica scaled in goes back to the pool as a standby while the pool is short "
        "(EC2 warm pools' ReuseOnScaleIn) instead of leaving",
    )
    p.add_argument(
        "--slim-standby-cores",
        type=float,
        default=None,
        metavar="CORES",
        help="hold each READY standby to this many cores (a cgroup CPU quota; needs root or a "
        "delegated cgroup) until it is claimed: a slim standby (docs/autoscaling.md)",
    )


def standby_pool_config(args: argparse.Namespace, target: int) -> PoolConfig:
    """The pool of ``--pool`` standbys at most, starting at ``target``, with the options of
    :func:`add_standby_options`."""
    return PoolConfig(
        target_size=target,
        max_size=max(args.pool, 1),
        max_prepared=args.max_prepared,
        reuse_on_scale_in=args.reuse_on_scale_in,
    )


def run_fleet(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM, then drain every replica and stop HAProxy."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="warmgate-fleet-"))
    if args.burst_capacity is not None and args.pool < 1:
        raise ConfigError("--burst-capacity sizes the pool up to --pool standbys: give --pool N (N >= 1)")
    sizing = (
        BurstSizing(replica_capacity=args.burst_capacity, horizon_s=args.burst_horizon_s)
        if args.burst_capacity is not None
        else None
    )
    scaling = ScalingConfig(
        min_hot=args.min_hot,
        max_replicas=args.max_replicas,
        target_per_replica=args.target_in_flight,
        scale_in_window_s=args.scale_in_window_s,
        burst=sizing,
    )
    settings = HaproxySettings(
        port=args.port,
        socket=workdir / "haproxy.sock",
        bind=args.bind,
        stats_port=args.stats_port,
        check_inter_ms=args.check_inter_ms,
        server_maxconn=args.max_conn_per_replica,
    )
    # Replicas read the resolved directory: a symlink swapped later changes only what a reload sees.
    model_dir = Path(os.path.realpath(args.model_dir))
    spec = ReplicaSpec(model_dir, tuple(args.replica_arg), drain_delay_s=args.drain_delay_s)
    store_url = args.pool_store or str(workdir / "pool.db")
    slots = 2 * args.max_replicas + args.pool
    slim = open_quota(f"warmgate-fleet-{os.getpid()}", args.slim_standby_cores)
    stop = threading.Event()

    redeploy: Redeploy | None = None
    early_hangup = threading.Event()  # a SIGHUP before the fleet is up: acted on once it is

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: draining the fleet", signal.Signals(signum).name)
        stop.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        if redeploy is not None:
            redeploy.request()  # sets a flag: the control loop reads the model directory
        else:
            early_hangup.set()

    handlers = {signal.SIGINT: on_signal, signal.SIGTERM: on_signal, signal.SIGHUP: on_hangup}
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        with Fleet(spec, settings, workdir, slots=slots, haproxy_binary=args.haproxy, slim=slim) as fleet:
            log.info("fleet on %s; work directory %s", fleet.url, workdir)
            key = fleet_match_key(spec)
            log.info("serving %s: model %s", model_dir, key)
            pool = _open_pool(args, key, store_url) if args.pool else None
            # The store's times are wall-clock seconds, which every controller sharing it agrees on.
            loop = ControlLoop(fleet, scaling, pool, clock=time.time, tick_s=args.tick_s)
            redeploy = loop.redeploy = Redeploy(
                fleet,
                key,
                pool,
                model_dir=args.model_dir,
                floor=args.min_hot,
                registry=loop.metrics.registry,
                clock=loop.clock,
                timeout_s=args.redeploy_timeout_s,
            )
            if early_hangup.is_set():
                redeploy.request()
            if pool is not None:
                loop.metrics.watch_store(pool.store, time.time)
            try:
                if args.metrics_port is not None:
                    start_http_server(args.metrics_port, args.bind, registry=loop.metrics.registry)
                    log.info("fleet metrics on http://%s:%s/metrics", args.bind, args.metrics_port)
                for _ in range(args.replicas):
                    fleet.launch(Role.SERVING, loop.clock())
                loop.run(stop)
            finally:
                redeploy.close()
                if pool is not None:
                    for member in pool.leave():
                        fleet.retire(member.member_id, loop.clock())
                    pool.store.close()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("fleet stopped")
    return 0


def _open_pool(args: argparse.Namespace, key: MatchKey, url: str) -> StoredPool:
    # Burst-sized: none until the policy names a need (Decision.standbys), at most --pool.
    config = standby_pool_config(args, 0 if args.burst_capacity is not None else args.pool)
    store = open_store(url, config, lease_ttl_s=args.pool_lease_ttl_s)
    log.info("pool store %s; standbys match %s", redact(url), key)
    return StoredPool(store, key, "fleet", time.time(), lease_ttl_s=args.pool_lease_ttl_s)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m warmgate.fleet ARGS`` is ``warmgate fleet ARGS``."""
    parser = argparse.ArgumentParser(prog="warmgate")
    add_fleet_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["fleet", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code
