"""Steady closed-loop load from its own process, recording which model answered each request.

``python -m tests.e2e.model_load URL OUT STOP [--workers N]``: each worker POSTs a zero
``[1, 4]`` float32 array (``application/x-npy``) to ``URL`` again and again until the file
``STOP`` exists, and appends one JSON line per request to ``OUT``::

    {"sent": 1764100000.123, "done": 1764100000.130, "status": 200, "mark": 2.0}

``sent`` and ``done`` are wall-clock seconds (``time.time()``, the clock the fleet's metrics
use); ``status`` 0 means the connection failed (``error`` then says how); ``mark`` is the
first output value (the test models add a constant to their input, so it names the model),
``null`` unless 200.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import numpy as np

from tests.e2e.process import stop_by_file

NPY = "application/x-npy"


def _body() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 4), np.float32))
    return buffer.getvalue()


def _worker(url: str, out: IO[str], lock: threading.Lock, stop: Path) -> None:
    body = _body()
    with httpx.Client(timeout=60.0) as client:
        while not stop.exists():
            sent = time.time()
            mark: float | None = None
            error = ""
            try:
                reply = client.post(url, content=body, headers={"Content-Type": NPY, "Accept": NPY})
                status = reply.status_code
                if status == 200:
                    mark = float(np.load(io.BytesIO(reply.content), allow_pickle=False).ravel()[0])
            except httpx.HTTPError as exc:
                status, error = 0, repr(exc)[:200]
            row: dict[str, float | str | None] = {
                "sent": sent,
                "done": time.time(),
                "status": status,
                "mark": mark,
            }
            if error:
                row["error"] = error
            with lock:
                out.write(json.dumps(row) + "\n")
                out.flush()


def read_rows(path: Path) -> list[dict[str, float]]:
    """The complete lines written so far."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n")]


@contextmanager
def running(url: str, out: Path, workers: int) -> Iterator[subprocess.Popen[bytes]]:
    """This load generator as its own process, writing rows to ``out``; stopped on exit."""
    stop = out.with_suffix(".stop")
    cmd = [sys.executable, "-m", "tests.e2e.model_load", url, str(out), str(stop), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        stop_by_file(proc, stop, 60)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.model_load", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("stop", type=Path)
    parser.add_argument("--workers", type=int, default=3)
    args = parser.parse_args(argv)
    lock = threading.Lock()
    with args.out.open("a") as out:
        threads = [
            threading.Thread(target=_worker, args=(args.url, out, lock, args.stop), daemon=True)
            for _ in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
