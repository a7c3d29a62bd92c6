"""Open-loop load from a separate process: POST one body at a fixed rate, log every outcome.

Used by the end-to-end reliability tests and ``scripts/bench_reliability.py``. Each request is
written as one JSON line, ``{"start", "end", "status", "error", "retry_after"}``, with times from
``time.monotonic()`` (one clock for every process on a Linux machine, so the caller can line
outcomes up with what it did). Runs until ``--duration`` passes or ``--stop-file`` appears; then
waits for the requests still open.

    python scripts/steady_load.py http://127.0.0.1:8080/invocations --rate 50 \\
        --body '[[1, 2, 3, 4]]' --out load.jsonl --stop-file stop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx


async def one(client: httpx.AsyncClient, url: str, body: bytes, ctype: str, out: IO[str]) -> None:
    start = time.monotonic()
    record: dict[str, Any] = {"start": start, "status": 0, "error": "", "retry_after": None}
    try:
        response = await client.post(url, content=body, headers={"Content-Type": ctype})
        record["status"] = response.status_code
        record["retry_after"] = response.headers.get("Retry-After")
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["end"] = time.monotonic()
    out.write(json.dumps(record) + "\n")
    out.flush()


async def run(args: argparse.Namespace) -> int:
    body = Path(args.body_file).read_bytes() if args.body_file else args.body.encode()
    stop = Path(args.stop_file) if args.stop_file else None
    limits = httpx.Limits(
        max_connections=args.max_connections, max_keepalive_connections=args.max_connections
    )
    interval = 1.0 / args.rate
    tasks: set[asyncio.Task[None]] = set()
    with Path(args.out).open("w") as out:
        async with httpx.AsyncClient(timeout=args.timeout, limits=limits) as client:
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < args.duration and not (stop is not None and stop.exists()):
                task = asyncio.create_task(one(client, args.url, body, args.content_type, out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                # Fixed schedule (open loop): a slow server does not slow the arrivals down.
                await asyncio.sleep(max(0.0, t0 + n * interval - time.monotonic()))
            if tasks:
                await asyncio.wait(tasks)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds to send for")
    parser.add_argument("--stop-file", default="", help="stop sending once this file exists")
    parser.add_argument("--body", default="[[1, 2, 3, 4]]")
    parser.add_argument("--body-file", default="")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--out", required=True)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
