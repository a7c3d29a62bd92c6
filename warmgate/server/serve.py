"""Run the app under uvicorn with warmgate's shutdown: SIGTERM drains instead of stopping.

On the first SIGTERM/SIGINT the replica goes DRAINING (``/ping`` 503) and keeps serving for
``drain_delay_s`` so load balancers see it leave; then uvicorn closes the listener, lets in-flight
requests finish and runs the lifespan shutdown. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

from warmgate.config import Config
from warmgate.server.app import create_app
from warmgate.server.runtime import Runtime
from warmgate.warmup.loopback import loopback_url

log = logging.getLogger("warmgate.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime, drain_delay_s: float) -> None:
        super().__init__(config)
        self._runtime = runtime
        self._drain_delay_s = drain_delay_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self.exit_code = 0

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: re-raising SIGTERM after a clean drain
        # would turn exit code 0 into 143.
        if self.should_exit or self._loop is None:
            self.force_exit = self.should_exit
            self.should_exit = True
            return
        name = signal.Signals(sig).name
        self._loop.call_soon_threadsafe(self._drain, name)

    def _drain(self, name: str) -> None:
        assert self._loop is not None
        if not self._runtime.begin_drain(f"{name} received; draining for {self._drain_delay_s:g}s"):
            self.should_exit = True
            return
        self._loop.call_later(self._drain_delay_s, self._close)

    def _close(self) -> None:
        log.info("drain window over: closing the listener, finishing in-flight requests")
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's main loop asks this every tick; the runtime may want the process to end
        (FAILED with ``--exit-on-failure``): then stop with its exit code."""
        if self._runtime.exit_code is not None:
            self.exit_code = self._runtime.exit_code
            return True
        return await super().on_tick(counter)


def serve(config: Config) -> int:
    # Warmup ends over HTTP; the runtime owns this process, so it freezes the heap before READY.
    runtime = Runtime(config, loopback_url=loopback_url(config.host, config.port), freeze_heap=True)
    uv_config = uvicorn.Config(
        create_app(runtime),
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(config.timeout_s) + 5,
        timeout_keep_alive=75,
        lifespan="on",
    )
    server = DrainingServer(uv_config, runtime, config.drain_delay_s)
    server.run()
    return server.exit_code
