"""The replica's runtime: lifecycle, model, batcher and pipeline, and the background start-up
(load → warmup → READY) that runs after the listener has opened."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warmgate.config import Config
from warmgate.errors import ModelLoadError, WarmgateError, WarmupError
from warmgate.models.base import Model, ModelKind
from warmgate.models.loader import resolve_model_dir
from warmgate.server.admission import Admission
from warmgate.server.batcher import Batcher
from warmgate.server.lifecycle import Lifecycle, Phase
from warmgate.server.metrics import Metrics
from warmgate.server.pipeline import Pipeline, Reply
from warmgate.warmup.loopback import LoopbackSender, new_token
from warmgate.warmup.runner import ShapeResult, WarmupDeadline, WarmupPolicy, run_warmup

log = logging.getLogger("warmgate.runtime")

ModelFactory = Callable[[Config, Path], Model]


def default_model_factory(config: Config, model_dir: Path) -> Model:
    from warmgate.models.loader import build_model

    return build_model(config, model_dir, config.model_name or model_dir.name or "model")


class Runtime:
    def __init__(self, config: Config, model_factory: ModelFactory = default_model_factory) -> None:
        self.config = config
        self._model_factory = model_factory
        self.model: Model | None = None
        self.model_dir = config.model_dir
        self.pipeline: Pipeline | None = None
        self.warmup_results: list[ShapeResult] = []
        self.metrics = Metrics(lambda: self.model.stats if self.model else None)
        self.lifecycle = Lifecycle(on_change=lambda old, new: self.metrics.set_phase(new))
        self.admission = Admission(config.max_queue)
        self.recorder: Any = None
        if config.record_shapes:
            from warmgate.warmup.record import ShapeRecorder

            self.recorder = ShapeRecorder()
        self.request_exit: Callable[[int], None] = lambda code: None
        # Set by the server once it knows its listener: warmup then ends with requests sent over
        # HTTP to it (warmup/loopback.py), let in before READY by this per-process token.
        self.loopback_url: str | None = None
        self._warmup_token = new_token()
        self._batcher: Batcher | None = None
        self._task: asyncio.Task[None] | None = None
        self.metrics.in_flight.set_function(lambda: self.admission.admitted)
        self.metrics.queue_depth.set_function(lambda: self._batcher.depth if self._batcher else 0)

    # --- lifespan ----------------------------------------------------------------------------

    def start(self) -> None:
        self._batcher = Batcher(
            self._infer,
            max_rows=self.config.bucket_plan().max_batch,
            max_delay_s=self.config.batch_delay_ms / 1000,
            on_batch=self.metrics.batch_size.observe,
        )
        self._batcher.start()
        self._task = asyncio.get_running_loop().create_task(self._bring_up(), name="warmgate-start")

    async def stop(self) -> None:
        """Lifespan shutdown: uvicorn has already finished in-flight requests."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._batcher is not None:
            await self._batcher.drain()
        if self.lifecycle.phase in (Phase.READY, Phase.STARTING, Phase.LOADING, Phase.WARMING):
            self.lifecycle.transition(Phase.DRAINING, "shutting down")
        if self.lifecycle.can(Phase.STOPPED):
            self.lifecycle.transition(Phase.STOPPED, "shutdown complete")

    def begin_drain(self, reason: str) -> bool:
        """SIGTERM: /ping goes 503 at once; requests keep being served until the listener closes."""
        if not self.lifecycle.can(Phase.DRAINING):
            return False
        self.lifecycle.transition(Phase.DRAINING, reason)
        return True

    def is_warmup_request(self, token: str | None) -> bool:
        """A loopback warmup request of this process, while it is warming."""
        return (
            token is not None
            and self.lifecycle.phase is Phase.WARMING
            and hmac.compare_digest(token, self._warmup_token)
        )

    def healthy(self) -> bool:
        """Liveness: not FAILED, and the inference thread is not wedged."""
        wedged = self._batcher is not None and self._batcher.wedged(self.config.watchdog_s)
        return self.lifecycle.phase is not Phase.FAILED and not wedged

    # --- start-up ----------------------------------------------------------------------------

    def _infer(self, items: Any) -> list[Any]:
        assert self.model is not None
        return self.model.infer(items)

    def _progress(self, message: str) -> None:
        log.info("%s", message)
        self.lifecycle.reason = message

    async def _bring_up(self) -> None:
        assert self._batcher is not None
        try:
            if self.lifecycle.phase is not Phase.STARTING:  # SIGTERM before start-up began
                return
            self.lifecycle.transition(Phase.LOADING, "loading model")
            t0 = time.perf_counter()
            self.model_dir = await asyncio.to_thread(resolve_model_dir, self.config, self._progress)
            model = await asyncio.to_thread(self._model_factory, self.config, self.model_dir)
            await self._batcher.run_now(model.load)
            self.metrics.model_load_seconds.set(time.perf_counter() - t0)
            self.model = model
            self.pipeline = Pipeline(model, self._batcher, self.config.timeout_s)
            self.lifecycle.transition(
                Phase.WARMING, f"model {model.name} loaded in {time.perf_counter() - t0:.2f}s"
            )
            t1 = time.perf_counter()
            if self.config.warmup:
                deadline = time.monotonic() + self.config.warmup_timeout_s
                # The runner checks the deadline between requests; wait_for is the backstop for
                # a single request that hangs.
                await asyncio.wait_for(self._warm(model, deadline), self.config.warmup_timeout_s + 1)
            await self._batcher.run_now(model.seal)
            if self.recorder is not None:  # record traffic's shapes, not warmup's own
                self.pipeline.observe = self.recorder.observe
            self.lifecycle.transition(
                Phase.READY,
                f"warmed {len(self.warmup_results)} shapes in {time.perf_counter() - t1:.2f}s"
                if self.config.warmup
                else "warmup disabled",
            )
        except (TimeoutError, WarmupDeadline):
            self._fail(
                WarmupError(
                    f"warmup did not finish within {self.config.warmup_timeout_s:g}s "
                    f"(WARMGATE_WARMUP_TIMEOUT); last shape: {self.lifecycle.warmup.current or '-'}"
                )
            )
        except WarmgateError as exc:
            self._fail(exc)
        except Exception as exc:  # a model's own crash during load: keep the reason visible
            log.exception("start-up failed")
            self._fail(ModelLoadError(f"{type(exc).__name__}: {exc}"))

    def _fail(self, error: WarmgateError) -> None:
        if not self.lifecycle.can(Phase.FAILED):  # draining already: a stop, not a failure
            log.info("start-up abandoned while %s: %s", self.lifecycle.phase.value, error.message)
            return
        self.lifecycle.transition(Phase.FAILED, error.message)
        if self.config.exit_on_failure:
            self.request_exit(1)

    async def _warm(self, model: Model, deadline: float) -> None:
        from warmgate.warmup.promptset import default_prompt_set, load_prompt_sets

        assert self._batcher is not None and self.pipeline is not None
        pipeline = self.pipeline
        hook = getattr(model, "warmup_hook", None)
        if callable(hook):
            await self._batcher.run_now(hook)
        paths = self._prompt_paths()
        if paths or model.kind is not ModelKind.TEXT:
            prompts = load_prompt_sets(paths)
        else:
            prompts = default_prompt_set()

        async def path(body: bytes, content_type: str, accept: str) -> Reply:
            return await pipeline.handle(body, content_type, accept)

        def progress(done: int, total: int, current: str) -> None:
            w = self.lifecycle.warmup
            w.done, w.total, w.current = done, total, current

        def on_shape(result: ShapeResult) -> None:
            self.metrics.warmup_seconds.labels(result.name).set(result.seconds)
            self.metrics.warmup_steady_seconds.labels(result.name).set(result.steady_s)

        synthetic = None if model.kind is ModelKind.HANDLER else model.synthetic_request
        policy = WarmupPolicy(self.config.warmup_max_runs, self.config.warmup_tolerance)
        http = LoopbackSender(self.loopback_url, self._warmup_token) if self.loopback_url else None
        try:
            self.warmup_results = await run_warmup(
                path, prompts, model.buckets(), synthetic, policy, progress, on_shape, deadline, http
            )
        finally:
            if http is not None:
                await http.aclose()

    def _prompt_paths(self) -> list[Path]:
        paths: list[Path] = []
        paths.extend(sorted((self.model_dir / "warmup").glob("*.jsonl")))
        if self.config.warmup_set:
            paths.append(Path(self.config.warmup_set))
        return paths
