"""An open-loop load generator, run as its own process: ``python -m warmgate.fleet.loadgen``.

It sends one POST per arrival time (seconds from its start, a JSON list in a file) to ``URL``,
whether or not earlier ones have answered, and writes one JSON row per request to ``OUT``:
``[offset_s, latency_s, status]`` (status 0: the connection failed). Open loop means a slow
fleet gets more concurrent requests, not fewer, as real clients would send. ``--start-at``
names the zero of the offsets on the host's monotonic clock (``time.monotonic()``, shared by
every process), so a caller can line other events up with the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


async def _one(client: httpx.AsyncClient, url: str, body: bytes, start: float, at: float) -> list[float]:
    await asyncio.sleep(max(0.0, start + at - time.monotonic()))
    sent = time.monotonic()
    try:
        reply = await client.post(url, content=body, headers={"Content-Type": "application/x-npy"})
        status = reply.status_code
    except httpx.HTTPError:
        status = 0
    return [at, time.monotonic() - sent, status]


async def _run(
    url: str, body: bytes, arrivals: Sequence[float], start: float | None = None
) -> list[list[float]]:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        start = time.monotonic() if start is None else start
        return list(await asyncio.gather(*(_one(client, url, body, start, at) for at in arrivals)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warmgate.fleet.loadgen", description=__doc__)
    parser.add_argument("url", help="e.g. http://127.0.0.1:8080/invocations")
    parser.add_argument("body", type=Path, help="request body file (sent as application/x-npy)")
    parser.add_argument("arrivals", type=Path, help="JSON list of send times, seconds from start")
    parser.add_argument("out", type=Path, help="where the per-request rows go (JSON)")
    parser.add_argument(
        "--start-at", type=float, default=None, help="time.monotonic() of offset 0 (default: now)"
    )
    args = parser.parse_args(argv)
    arrivals = [float(a) for a in json.loads(args.arrivals.read_text())]
    rows = asyncio.run(_run(args.url, args.body.read_bytes(), arrivals, args.start_at))
    args.out.write_text(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
