"""``warmgate replay`` and ``warmgate record``: the SRE commands of the warmup package.

``warmgate/cli.py`` calls :func:`add_commands` with its subparsers; each command sets
``func(args) -> int`` (the exit status). ``python -m warmgate.warmup`` runs them standalone.

Exit status: 0 fine; 1 a request failed, a p99 budget broke, or recording gave nothing;
2 bad usage or an invalid prompt set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from warmgate.errors import ConfigError
from warmgate.warmup.promptset import (
    PromptLine,
    default_set_path,
    dump_prompt_set,
    load_prompt_sets,
)
from warmgate.warmup.record import DEFAULT_MAX_REPEAT, prompt_set_from_snapshot
from warmgate.warmup.replay import endpoint, format_table, run_replay

SHAPES_PATH = "/warmgate/shapes"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_BUILTIN = "default"


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``replay`` and ``record`` on an existing ``add_subparsers()`` result."""
    replay = subparsers.add_parser(
        "replay",
        help="send a warmup prompt set to a live endpoint and report latency per shape",
        description=(
            "Send every line of the prompt set(s) to URL+PATH and print count, errors and "
            "p50/p95/p99 per shape. Exits 1 when a request fails or a shape breaks --p99-ms."
        ),
    )
    replay.add_argument(
        "sets",
        nargs="+",
        metavar="SET",
        help=f"prompt set .jsonl file(s); '{_BUILTIN}' is the built-in set of the default model",
    )
    replay.add_argument("--url", required=True, help="endpoint base URL, e.g. http://host:8080")
    replay.add_argument("--path", default="/invocations", help="request path (default: %(default)s)")
    replay.add_argument("--concurrency", type=_positive_int, default=4, help="parallel requests")
    replay.add_argument("--repeat", type=_positive_int, default=1, help="send the whole set N times")
    replay.add_argument("--timeout", type=_positive_float, default=60.0, help="per-request timeout, seconds")
    replay.add_argument("--json", action="store_true", help="print a JSON report to stdout")
    replay.add_argument(
        "--p99-ms",
        type=_positive_float,
        default=None,
        help="fail (exit 1) when any shape's p99 latency is above this many milliseconds",
    )
    replay.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )
    replay.set_defaults(func=run_replay_command)

    record = subparsers.add_parser(
        "record",
        help="write a prompt set from the traffic shapes a server has recorded",
        description=(
            f"Fetch URL{SHAPES_PATH} (the server needs recording enabled) and write a prompt "
            "set with synthetic bodies of the same shapes: content type, batch size, token "
            "length. Never user content."
        ),
    )
    record.add_argument("--url", required=True, help="endpoint base URL, e.g. http://host:8080")
    record.add_argument("-o", "--output", required=True, type=Path, help="prompt set to write")
    record.add_argument(
        "--max-repeat",
        type=_positive_int,
        default=DEFAULT_MAX_REPEAT,
        help="repeat of the most frequent shape; others in proportion (default: %(default)s)",
    )
    record.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds")
    record.set_defaults(func=run_record_command)


def run_replay_command(args: argparse.Namespace) -> int:
    try:
        lines = _load_sets(args.sets)
    except ConfigError as e:
        print(f"warmgate replay: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = run_replay(
        lines,
        endpoint(args.url, args.path),
        concurrency=args.concurrency,
        repeat=args.repeat,
        timeout_s=args.timeout,
        p99_budget_ms=args.p99_ms,
        progress=sys.stderr if show_progress else None,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(format_table(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def run_record_command(args: argparse.Namespace) -> int:
    url = endpoint(args.url, SHAPES_PATH)
    try:
        response = httpx.get(url, timeout=args.timeout)
    except httpx.TransportError as e:
        print(f"warmgate record: cannot reach {url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    if response.status_code == 404:
        print(
            f"warmgate record: {url} answered 404; is shape recording enabled in the server's config?",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if response.status_code != 200:
        print(f"warmgate record: {url} answered HTTP {response.status_code}", file=sys.stderr)
        return EXIT_FAILED
    try:
        lines = prompt_set_from_snapshot(response.json(), max_repeat=args.max_repeat)
    except (ValueError, ConfigError) as e:
        print(f"warmgate record: {url} gave an unusable snapshot: {e}", file=sys.stderr)
        return EXIT_FAILED
    if not lines:
        print(f"warmgate record: {url} has recorded no usable shapes yet", file=sys.stderr)
        return EXIT_FAILED
    try:
        dump_prompt_set(lines, args.output)
    except OSError as e:
        print(f"warmgate record: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return EXIT_FAILED
    total = sum(line.repeat for line in lines)
    print(f"wrote {len(lines)} shapes ({total} requests per pass) to {args.output}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """A standalone parser with just these commands (``python -m warmgate.warmup``)."""
    parser = argparse.ArgumentParser(prog="warmgate", description="warmgate warmup tools")
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


def _load_sets(paths: Sequence[str]) -> list[PromptLine]:
    with default_set_path() as builtin:
        files = [builtin if p == _BUILTIN and not Path(p).exists() else Path(p) for p in paths]
        return load_prompt_sets(files)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value
