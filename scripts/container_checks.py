"""HTTP checks that scripts/container_smoke.sh runs against a container (host side, httpx).

    container_checks.py startup URL STARTED_AT HEALTH_COMMAND...
                                                    503 → 200 on /ping, /livez 200 while warming,
                                                    HEALTH_COMMAND (the image's HEALTHCHECK) fails
                                                    while warming and passes when READY; prints
                                                    the start-up timings as JSON
    container_checks.py embeddings URL REFERENCE    /invocations equals sentence-transformers
    container_checks.py drain URL STOP_COMMAND...   concurrent load, then STOP_COMMAND (podman
                                                    stop); every request sent must succeed
    container_checks.py failed URL TEXT             /ping 503 with phase FAILED and TEXT in the reason

Each exits 0 when the check holds and 1 with a message naming what was seen otherwise.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

READY_DEADLINE_S = 600.0


class CheckFailed(Exception):
    pass


def _poll(deadline: float, step: Callable[[], bool], what: str) -> None:
    while time.monotonic() < deadline:
        if step():
            return
        time.sleep(0.05)
    raise CheckFailed(f"timed out waiting for {what}")


def _exit_code(command: list[str]) -> int:
    return subprocess.run(command, capture_output=True, timeout=60, check=False).returncode


def startup(url: str, started_at: float, health: list[str]) -> dict[str, float | int]:
    """Wait for /livez 200 and then /ping 200, checking that /ping was 503 and /livez 200 in
    between, and that ``health`` fails while warming and passes once READY. ``started_at`` is the
    wall-clock second the `podman run` began (taken by the shell)."""
    deadline = time.monotonic() + READY_DEADLINE_S
    seen: dict[str, float] = {}
    warming_pings: list[int] = []
    warming_livez: list[int] = []
    slow: list[int] = []

    def live() -> bool:
        try:
            ok = httpx.get(f"{url}/livez", timeout=2).status_code == 200
        except httpx.TransportError:
            return False
        if ok:
            seen["livez"] = time.time()
        return ok

    def ready() -> bool:
        try:
            ping = httpx.get(f"{url}/ping", timeout=5)
        except httpx.TimeoutException:  # counted: on a busy shared machine warmup can starve it
            slow.append(1)
            return False
        if ping.status_code == 200:
            seen["ready"] = time.time()
            return True
        if ping.status_code != 503:
            raise CheckFailed(f"/ping answered {ping.status_code} while starting: {ping.text[:200]}")
        body = ping.json()
        if str(body.get("phase")).lower() == "failed":
            raise CheckFailed(f"the replica FAILED while starting: {body.get('reason')}")
        warming_pings.append(ping.status_code)
        warming_livez.append(httpx.get(f"{url}/livez", timeout=5).status_code)
        if len(warming_pings) == 1:
            code = _exit_code(health)
            if code == 0 and httpx.get(f"{url}/ping", timeout=2).status_code != 200:
                raise CheckFailed(f"{' '.join(health)} reported healthy while /ping was 503")
        return False

    _poll(deadline, live, "/livez 200")
    _poll(deadline, ready, "/ping 200")
    if not warming_pings:
        raise CheckFailed("/ping was never 503: READY before the first poll (warmup disabled?)")
    if set(warming_livez) != {200}:
        raise CheckFailed(f"/livez was not always 200 while warming: {sorted(set(warming_livez))}")
    if _exit_code(health) != 0:
        raise CheckFailed(f"{' '.join(health)} reported unhealthy although /ping is 200")
    return {
        "run_to_livez_s": round(seen["livez"] - started_at, 2),
        "run_to_ready_s": round(seen["ready"] - started_at, 2),
        "pings_503_while_warming": len(warming_pings),
        "pings_over_5s": len(slow),
    }


def embeddings(url: str, reference: Path) -> dict[str, float | int]:
    items = json.loads(reference.read_text())["items"]
    texts = [item["text"] for item in items]
    response = httpx.post(f"{url}/invocations", json={"inputs": texts}, timeout=60)
    if response.status_code != 200:
        raise CheckFailed(f"/invocations answered {response.status_code}: {response.text[:300]}")
    got = np.asarray(response.json()["embeddings"], np.float32)
    want = np.asarray([item["embedding"] for item in items], np.float32)
    if got.shape != want.shape:
        raise CheckFailed(f"embeddings of shape {got.shape}, expected {want.shape}")
    cosine = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    worst = float(np.max(np.abs(got - want)))
    if float(cosine.min()) < 0.9999 or worst > 1e-3:
        raise CheckFailed(f"embeddings differ from the reference: min cosine {cosine.min()}, max |d| {worst}")
    return {"texts": len(texts), "min_cosine": round(float(cosine.min()), 6), "max_abs_diff": worst}


def drain(url: str, stop: list[str], clients: int = 8) -> dict[str, float | int]:
    """``clients`` threads send /invocations back to back, as a load balancer would, until the
    monitor sees /ping leave 200 (DRAINING); then STOP_COMMAND runs. Every sent request must get 200."""
    draining = threading.Event()
    results: list[int | str] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(timeout=60) as http:
            while not draining.is_set():
                try:
                    status: int | str = http.post(
                        f"{url}/invocations", json={"inputs": [f"request {i} during the drain"]}
                    ).status_code
                except httpx.TransportError as exc:
                    status = f"{type(exc).__name__}: {exc}"
                with lock:
                    results.append(status)

    def monitor() -> None:
        while not draining.is_set():
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code != 200:
                    draining.set()
            except httpx.TransportError:
                draining.set()
            time.sleep(0.1)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.0)  # let the load build up before the stop
    watcher = threading.Thread(target=monitor)
    watcher.start()
    t0 = time.monotonic()
    stopped = subprocess.run(stop, capture_output=True, text=True, timeout=120, check=False)
    stop_s = time.monotonic() - t0
    draining.set()
    for t in [*threads, watcher]:
        t.join(timeout=120)
    failures = [r for r in results if r != 200]
    if stopped.returncode != 0:
        raise CheckFailed(f"{' '.join(stop)} failed: {stopped.stderr.strip()}")
    if failures or not results:
        raise CheckFailed(
            f"{len(failures)} of {len(results)} requests failed during the drain: {failures[:5]}"
        )
    return {"requests": len(results), "failed": 0, "stop_s": round(stop_s, 2)}


def failed(url: str, text: str) -> dict[str, str]:
    deadline = time.monotonic() + 120
    body: dict[str, str] = {}

    def is_failed() -> bool:
        nonlocal body
        try:
            ping = httpx.get(f"{url}/ping", timeout=2)
        except httpx.TransportError:
            return False
        body = ping.json() if ping.status_code == 503 else {}
        return str(body.get("phase")).lower() == "failed"

    _poll(deadline, is_failed, "/ping to report FAILED")
    if text not in str(body.get("reason")):
        raise CheckFailed(f"FAILED, but the reason does not mention {text!r}: {body.get('reason')!r}")
    if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
        raise CheckFailed("/livez is 200 although the replica FAILED")
    return {"phase": "FAILED", "reason": str(body.get("reason"))}


def main(argv: list[str]) -> int:
    command, url, *rest = argv
    try:
        if command == "startup":
            out: object = startup(url, float(rest[0]), rest[1:])
        elif command == "embeddings":
            out = embeddings(url, Path(rest[0]))
        elif command == "drain":
            out = drain(url, rest)
        elif command == "failed":
            out = failed(url, rest[0])
        else:
            raise CheckFailed(f"unknown check {command!r}")
    except CheckFailed as exc:
        print(f"FAIL {command}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
