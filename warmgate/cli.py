"""``warmgate serve | fetch-model | export-onnx | replay | record | simulate | render | fleet | pool |
bench``.

Parsers are built when ``main`` runs, never at import. ``serve`` imports only the server;
model backends load in the background after the listener opens.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from warmgate.config import OPTIONS, add_arguments, load_config
from warmgate.errors import ConfigError, WarmgateError


def _add_serve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "serve",
        help="serve a model directory (readiness-gated: /ping is 503 until warmup is done)",
        description="Serve a model. Every option can also be set by the environment variable "
        "shown, or in the model directory's warmgate.toml [section] key; flags win over "
        "environment, environment over warmgate.toml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from warmgate.logs import configure_logging

    overrides = {opt.field: getattr(args, opt.field) for opt in OPTIONS}
    config = load_config(overrides)
    configure_logging(config.log_format)
    from warmgate.server.serve import serve

    return serve(config)


def _add_fetch(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("fetch-model", help="fetch the default model (all-MiniLM-L6-v2)")
    parser.add_argument(
        "dest",
        nargs="?",
        type=Path,
        default=None,
        help="directory to lay the model out in (default: the warmgate cache)",
    )
    parser.set_defaults(func=_fetch)


def _fetch(args: argparse.Namespace) -> int:
    from warmgate.models.fetch import default_cache_dir, fetch_default_model

    path = fetch_default_model(args.dest or default_cache_dir(), lambda m: print(m, file=sys.stderr))
    print(path)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("export-onnx", help="export a safetensors text model to model.onnx")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="output file (default: MODEL_DIR/model.onnx)",
    )
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        default=None,
        help="write an int8 dynamically quantised copy (onnxruntime.quantization) instead of fp32",
    )
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from warmgate.models.text import export_onnx

    print(export_onnx(args.model_dir, args.output, quantize=args.quantize))
    return 0


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command's parser; for ``command="serve"`` only serve's, so a replica's start-up
    (counted in its time to READY) does not import the other commands' modules."""
    import warmgate

    parser = argparse.ArgumentParser(prog="warmgate", description=(warmgate.__doc__ or "").strip())
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    if command == "serve":
        return parser
    from warmgate.autoscaling.cli import add_commands as add_autoscaling
    from warmgate.bench.cli import add_command as add_bench
    from warmgate.fleet.cli import add_fleet_command
    from warmgate.fleet.pool_cli import add_pool_command
    from warmgate.warmup.cli import add_commands as add_warmup

    _add_fetch(sub)
    _add_export(sub)
    add_warmup(sub)
    add_autoscaling(sub)
    add_fleet_command(sub)
    add_pool_command(sub)
    add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv[0] if argv[:1] == ["serve"] else None).parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, WarmgateError) as exc:
        print(f"warmgate: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
