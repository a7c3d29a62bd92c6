"""``warmgate pool …``: the operator's commands on a pool store (docs/pool-store.md).

::

    warmgate pool status    --store URL [--key ID] [--json | --prometheus] [--window-s S] [--all]
    warmgate pool replenish --store URL --key ID MIN_STANDBYS
    warmgate pool recycle   --store URL --key ID
    warmgate pool drain     --store URL --key ID
    warmgate pool activate  --store URL --key ID
    warmgate pool archive   --store URL --key ID
    warmgate pool delete    --store URL --key ID
    warmgate pool set-ttl   --store URL --key ID SECONDS|default
    warmgate pool migrate   --store URL

A key ID is a prefix of the match key's SHA-256 (``status`` shows 12 digits); any unique
prefix works. The commands keep books only: controllers launch and stop the processes at
their next reap. Times are wall-clock seconds (``time.time()``), the clock a shared store's
controllers use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.errors import ConfigError
from warmgate.fleet.store import open_store
from warmgate.fleet.store.open import redact, sqlite_path
from warmgate.fleet.store.protocol import PoolStore
from warmgate.fleet.store.status import PoolStatus, WarmPoolStatus

Command = Callable[[PoolStore, argparse.Namespace], int]


def add_pool_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pool = sub.add_parser(
        "pool",
        help="operate a warm-pool store: status, replenish, recycle, drain, archive, delete, set-ttl, "
        "migrate",
        description="Operate the warm pool's books in a pool store (docs/pool-store.md). Controllers "
        "(warmgate fleet) launch and stop the processes; these commands change the books they follow.",
    )
    commands = pool.add_subparsers(dest="pool_command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, func: Command, key: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_, description=help_)
        parser.add_argument("--store", required=True, help="sqlite:///PATH, a SQLite path, or postgresql://…")
        if key:
            parser.add_argument(
                "--key", required=True, help="the pool's key id (a unique prefix of its SHA-256)"
            )
        parser.set_defaults(func=lambda args: _run(args, func))
        return parser

    status = command(
        "status", "per-key counts by state and status, standby ages, billable time", _status, False
    )
    status.add_argument("--key", default=None, help="only this pool (a unique key-id prefix)")
    status.add_argument(
        "--window-s", type=_seconds, default=3600.0, help="billable standby time over this window"
    )
    status.add_argument("--all", action="store_true", help="include archived pools")
    shape = status.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON document, for machines")
    shape.add_argument("--prometheus", action="store_true", help="the member-status metrics, text format")
    replenish = command(
        "replenish",
        "set the minimum standbys controllers' top-ups keep for the key (0 clears it)",
        _replenish,
    )
    replenish.add_argument("min_standby", type=_count, help="standbys (WARMING + READY) to keep at least")
    command("recycle", "retire the key's READY standbys; controllers replace them with fresh ones", _recycle)
    command("drain", "stop replenishing the key and retire its standbys (claimed members finish)", _drain)
    command("activate", "let a drained or archived pool take members again", _activate)
    command("archive", "hide a drained, empty pool; it refuses claims and top-ups until activated", _archive)
    command("delete", "remove a pool that has no members, with its history", _delete)
    ttl = command("set-ttl", "set the key's keep-alive TTL; 0 ends its standbys at the next reap", _set_ttl)
    ttl.add_argument("ttl", type=_ttl, help="seconds >= 0, or 'default' for each controller's configured TTL")
    command("migrate", "apply pending schema migrations (idempotent)", _migrate, False)


def _run(args: argparse.Namespace, func: Command) -> int:
    migrating = func is _migrate
    path = sqlite_path(args.store)
    if not migrating and path not in (None, ":memory:") and not Path(path).exists():
        raise ConfigError(f"no SQLite pool store at {path!r} (a controller creates it on first open)")
    store = open_store(args.store, PoolConfig(), migrate=migrating)
    try:
        return func(store, args)
    finally:
        store.close()


def _status(store: PoolStore, args: argparse.Namespace) -> int:
    key = store.resolve_key(args.key) if args.key else None
    pools = [
        p for p in store.status(time.time(), args.window_s, key) if args.all or key or not p.settings.archived
    ]
    if args.json:
        print(json.dumps({"store": redact(args.store), "pools": [p.to_json() for p in pools]}, indent=2))
    elif args.prometheus:
        from prometheus_client import CollectorRegistry, generate_latest

        from warmgate.fleet.store.metrics import PoolStatusCollector

        registry = CollectorRegistry()
        registry.register(PoolStatusCollector(store, time.time))
        sys.stdout.write(generate_latest(registry).decode())
    else:
        print(_table(pools, args.window_s))
    return 0


def _table(pools: Sequence[PoolStatus], window_s: float) -> str:
    if not pools:
        return "no pools"
    states = [s.value for s in MemberState]
    statuses = [s.value for s in WarmPoolStatus]
    head = ["KEY ID", "MODE", "TTL", "MIN", *(s.upper() for s in states), *statuses]
    head += ["OLDEST", "NEWEST", f"BILLABLE/{window_s:g}s"]
    rows = [head]
    for p in pools:
        ttl = "default" if p.settings.keep_alive_ttl_s is None else f"{p.settings.keep_alive_ttl_s:g}s"
        rows.append(
            [p.key_id, p.settings.label, ttl, str(p.settings.min_standby)]
            + [str(p.counts[s]) for s in MemberState]
            + [str(p.statuses[s]) for s in WarmPoolStatus]
            + [_age(p.oldest_standby_s), _age(p.newest_standby_s), f"{p.billable_standby_s:.0f}s"]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines += [""] + [f"{p.key_id}  {p.settings.key}" for p in pools]
    return "\n".join(lines)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


def _replenish(store: PoolStore, args: argparse.Namespace) -> int:
    key = store.resolve_key(args.key)
    store.replenish(key, args.min_standby)
    print(f"pool {args.key}: controllers' top-ups keep at least {args.min_standby} standby(s)")
    return 0


def _recycle(store: PoolStore, args: argparse.Namespace) -> int:
    ids = store.recycle(store.resolve_key(args.key), time.time())
    print(f"pool {args.key}: recycled {len(ids)} READY standby(s)" + (f": {' '.join(ids)}" if ids else ""))
    return 0


def _drain(store: PoolStore, args: argparse.Namespace) -> int:
    ids = store.drain(store.resolve_key(args.key), now=time.time())
    print(f"pool {args.key}: draining; retired {len(ids)} standby(s)" + (f": {' '.join(ids)}" if ids else ""))
    return 0


def _activate(store: PoolStore, args: argparse.Namespace) -> int:
    store.activate(store.resolve_key(args.key))
    print(f"pool {args.key}: active")
    return 0


def _archive(store: PoolStore, args: argparse.Namespace) -> int:
    store.archive(store.resolve_key(args.key), time.time())
    print(f"pool {args.key}: archived (activate it to use it again)")
    return 0


def _delete(store: PoolStore, args: argparse.Namespace) -> int:
    store.delete(store.resolve_key(args.key))
    print(f"pool {args.key}: deleted")
    return 0


def _set_ttl(store: PoolStore, args: argparse.Namespace) -> int:
    store.set_keep_alive(store.resolve_key(args.key), args.ttl)
    what = "each controller's default" if args.ttl is None else f"{args.ttl:g}s"
    print(f"pool {args.key}: keep-alive TTL {what}")
    return 0


def _migrate(store: PoolStore, args: argparse.Namespace) -> int:
    # Opening with migrate=True applied what was pending; this reports the version.
    applied = store.migrate()
    print(
        f"pool store {redact(args.store)}: schema at version {store.schema_version()}"
        + (f" (applied {', '.join(map(str, applied))})" if applied else " (up to date)")
    )
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _ttl(text: str) -> float | None:
    if text == "default":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write seconds >= 0, or 'default'") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"keep-alive TTL must be finite seconds >= 0, got {text}")
    return value
