"""The replica's runtime: lifecycle, inference thread, model, batcher, pipeline and health, and the
background start-up (load → warmup → READY) that runs after the listener has opened.

Start-up order matters: the model is loaded on the inference thread first, and only then is the
batcher built, from the model's own limits (its max batch, and whether its batch axis is fixed).
After READY a health monitor keeps readiness honest (READY ⇄ DEGRADED), and the batcher's loop
task carries a done-callback: a loop that ends is FAILED, with its traceback in the log.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from warmgate.config import Config
from warmgate.errors import Conflict, ModelLoadError, Unavailable, WarmgateError, WarmupError
from warmgate.media import media_type
from warmgate.models.base import Item, Model, ModelKind
from warmgate.models.loader import resolve_model_dir
from warmgate.server.admission import Admission
from warmgate.server.batcher import Batcher
from warmgate.server.codecs import Incoming, Protocol
from warmgate.server.grouping import BatchLimits
from warmgate.server.health import BatchRecord, HealthMonitor, HealthPolicy
from warmgate.server.heap import freeze_startup_heap
from warmgate.server.inference import InferenceWorkers
from warmgate.server.keepwarm import keep_warm
from warmgate.server.lifecycle import Lifecycle, Phase
from warmgate.server.metrics import Metrics
from warmgate.server.pipeline import Pipeline, Reply, ShapeObserver
from warmgate.warmup.loopback import LoopbackSender, new_token
from warmgate.warmup.record import ShapeRecorder
from warmgate.warmup.runner import Planned, ShapeOf, ShapeResult, WarmupDeadline, WarmupPolicy, run_warmup

log = logging.getLogger("warmgate.runtime")

ModelFactory = Callable[[Config, Path], Model]


def default_model_factory(config: Config, model_dir: Path) -> Model:
    from warmgate.models.loader import build_model

    return build_model(config, model_dir, config.model_name or model_dir.name or "model")


class Runtime:
    def __init__(
        self,
        config: Config,
        model_factory: ModelFactory = default_model_factory,
        loopback_url: str | None = None,
        freeze_heap: bool = False,
    ) -> None:
        self.config = config
        self._model_factory = model_factory
        self.model: Model | None = None
        self.model_dir = config.model_dir
        self.pipeline: Pipeline | None = None
        self.batcher: Batcher | None = None
        self.warmup_results: list[ShapeResult] = []
        self.metrics = Metrics(lambda: self.model.stats if self.model else None)
        self.lifecycle = Lifecycle(on_change=lambda old, new: self.metrics.set_phase(new))
        self.admission = Admission(config.max_queue, on_reject=self.metrics.rejected.labels("full").inc)
        self.recorder = ShapeRecorder() if config.record_shapes else None
        self.inference = InferenceWorkers(
            config.inference_niceness, idle=config.inference_idle, slice_us=config.inference_slice_us
        )
        self.batches = BatchRecord()
        # Set by the first request that arrives while serving: it ends the keep-warm (keepwarm.py).
        self.traffic = asyncio.Event()
        self._keep_warm: asyncio.Task[None] | None = None
        # Set when the process should end with this code (--exit-on-failure); the server's
        # main loop reads it. Nothing outside the runtime writes it.
        self.exit_code: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._startup: asyncio.Task[None] | None = None
        self._health: HealthMonitor | None = None
        # Where this process reaches its own listener (set by `serve`): warmup then ends with
        # requests sent over HTTP to it (warmup/loopback.py), let in before READY by this
        # per-process token. In-process apps (tests) leave it unset and skip that stage.
        self.loopback_url = loopback_url
        self._warmup_token = new_token()
        # Set by `serve`, whose process this runtime owns: before READY, collect once and freeze
        # Only a runtime that owns its process (`serve`) may freeze the heap at READY
        # (warmgate.server.heap; `--no-gc-freeze` turns it off): an in-process app leaves its
        # host's collector alone.
        self._freeze_heap = freeze_heap
        self.metrics.in_flight.set_function(lambda: self.admission.admitted)
        self.metrics.queue_depth.set_function(lambda: self.batcher.depth if self.batcher else 0)

    # --- lifespan ----------------------------------------------------------------------------

    def start(self) -> None:
        self._startup = self._spawn(self._bring_up(), "warmgate-start")

    @property
    def starting(self) -> bool:
        """True while the start-up task (load → warmup → READY) is still running."""
        return self._startup is None or not self._startup.done()

    async def stop(self) -> None:
        """Lifespan shutdown: uvicorn has already finished in-flight requests."""
        if self.lifecycle.can(Phase.DRAINING):
            self.lifecycle.transition(Phase.DRAINING, "shutting down")
        for task in list(self._tasks):
            task.cancel()
        if self.batcher is not None:
            await self.batcher.drain(self.config.timeout_s)
        self.inference.shutdown()
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
        """Liveness: false only when the process should be restarted (FAILED)."""
        return self.lifecycle.live

    # --- start-up ----------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _progress(self, message: str) -> None:
        log.info("%s", message)
        self.lifecycle.reason = message

    async def _bring_up(self) -> None:
        try:
            if self.lifecycle.phase is not Phase.STARTING:  # SIGTERM before start-up began
                return
            self.lifecycle.transition(Phase.LOADING, "loading model")
            t0 = time.perf_counter()
            self.model_dir = await asyncio.to_thread(resolve_model_dir, self.config, self._progress)
            model = await asyncio.to_thread(self._model_factory, self.config, self.model_dir)
            await self.inference.run_now(model.load)
            if model.instances < self.config.instances:  # asked for explicitly (0: the default)
                log.warning(
                    "instances %d asked, %d run: only ONNX Runtime on CPU runs several batches at once",
                    self.config.instances,
                    model.instances,
                )
            await self.inference.grow(model.instances)
            self.metrics.model_load_seconds.set(time.perf_counter() - t0)
            self.model = model
            if not self.lifecycle.can(Phase.WARMING):  # SIGTERM while loading: stop here
                log.info("start-up abandoned while %s", self.lifecycle.phase.value)
                return
            self.batcher = self._build_batcher(model)
            self.pipeline = Pipeline(model, self.batcher, self.config.timeout_s, self._observer())
            self.lifecycle.transition(
                Phase.WARMING, f"model {model.name} loaded in {time.perf_counter() - t0:.2f}s"
            )
            t1 = time.perf_counter()
            if self.config.warmup:
                deadline = time.monotonic() + self.config.warmup_timeout_s
                # The runner checks the deadline between requests; wait_for is the backstop for
                # a single request that hangs.
                await asyncio.wait_for(self._warm(model, deadline), self.config.warmup_timeout_s + 1)
            await self.inference.run_now(model.seal)
            if not self.lifecycle.can(Phase.READY):  # draining, or the loop died during warmup
                return
            # before READY: its one full collection meets no traffic
            if self._freeze_heap and self.config.gc_freeze:
                log.info("gc: %d start-up objects frozen", freeze_startup_heap())
            self.lifecycle.transition(
                Phase.READY,
                f"warmed {len(self.warmup_results)} shapes in {time.perf_counter() - t1:.2f}s"
                if self.config.warmup
                else "warmup disabled",
            )
            self._health = self._monitor()
            self._spawn(self._health.run(), "warmgate-health")
            self._start_keep_warm(model)
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

    def _start_keep_warm(self, model: Model) -> None:
        """From READY to the first request, keep the model's memory warm (keepwarm.py) with the
        last warmup request (a smallest shape): not for a user handler, whose code runs only on
        requests, nor without warmup (no such request); nor when ``keep_warm_at_ready`` is off
        (a standby, whose controller re-arms it when it claims it)."""
        if self.config.keep_warm_at_ready and self._keep_warm_off(model) is None:
            self._spawn_keep_warm(model)

    def _keep_warm_off(self, model: Model) -> str | None:
        """Why the keep-warm cannot run for ``model``; None when it can."""
        if self.config.keep_warm_s <= 0:
            return "the keep-warm is off (--keep-warm-s 0)"
        if model.kind is ModelKind.HANDLER:
            return "a user handler's code runs only on requests: nothing to keep warm"
        if self.batches.canary is None:
            return "warmup did not run (--no-warmup): no request to keep warm with"
        return None

    def not_ready(self) -> Unavailable:
        """The error for a request this replica cannot take in its phase."""
        return Unavailable(f"not ready: phase {self.lifecycle.phase.value} ({self.lifecycle.reason})", 5)

    def rearm_keep_warm(self) -> float:
        """Keep warm again until the next request (or ``keep_warm_s``): a warm-pool standby
        that sat idle is about to take traffic (its controller calls this on a claim). Returns
        the seconds it may run; raises Unavailable unless READY, Conflict when it cannot run."""
        if not self.lifecycle.ready or self.model is None:
            raise self.not_ready()
        off = self._keep_warm_off(self.model)
        if off is not None:
            raise Conflict(off)
        self.traffic.clear()
        if self._keep_warm is not None:
            self._keep_warm.cancel()
        self._spawn_keep_warm(self.model)
        log.info("keep-warm re-armed until the next request, at most %gs", self.config.keep_warm_s)
        return self.config.keep_warm_s

    def _spawn_keep_warm(self, model: Model) -> None:
        item = self.batches.canary
        assert item is not None  # _keep_warm_off checked it

        async def run() -> None:
            await self.inference.run_now(model.infer, [item])

        async def warm() -> None:
            seconds, on_run = self.config.keep_warm_s, self.metrics.keep_warm_runs.inc
            await keep_warm(run, self.traffic, seconds, on_run, serving=lambda: self.lifecycle.ready)

        self._keep_warm = self._spawn(warm(), "warmgate-keep-warm")

    def _build_batcher(self, model: Model) -> Batcher:
        # Several instances share the largest batch out: on 2 cores, 32 clients served 0.94 x raw
        # with two instances of 16 rows, 0.88 x with two of 32 (the first free instance took
        # every queued request and the other ran the stragglers), 0.79 x with one.
        limits = BatchLimits(max(1, model.max_batch // model.instances), fixed=model.fixed_batch)
        log.info(
            "batcher: at most %d rows a batch%s, %d at once",
            limits.max_rows,
            " (fixed batch axis)" * limits.fixed,
            model.instances,
        )

        async def execute(items: Sequence[Item]) -> list[Any]:
            return await self.inference.run_now(model.infer, items)

        batcher = Batcher(
            execute,
            limits,
            max_delay_s=self.config.batch_delay_ms / 1000,
            on_batch=self.metrics.batch_size.observe,
            on_outcome=self._on_outcome,
            regroup=self.config.batch_regroup,
            concurrency=model.instances,
        )
        batcher.start().add_done_callback(self._batcher_ended)
        return batcher

    def _on_outcome(self, items: Sequence[Item], error: BaseException | None) -> None:
        self.batches(items, error)
        if self._health is not None and self.lifecycle.phase in (Phase.READY, Phase.DEGRADED):
            self._health.tick()  # at once: the batch that crosses the limit is the last one routed here

    def _batcher_ended(self, task: asyncio.Task[None]) -> None:
        """The batcher's loop runs until shutdown cancels it; any other end is terminal."""
        if task.cancelled():
            return
        exc = task.exception()
        log.error("the batcher's loop ended", exc_info=exc)
        self._fail(WarmgateError(f"the batcher's loop ended: {type(exc).__name__}: {exc}"))

    def _observer(self) -> ShapeObserver | None:
        recorder = self.recorder
        if recorder is None:
            return None

        def observe(content_type: str, accept: str, rows: int, tokens: int) -> None:
            if self.lifecycle.phase is not Phase.WARMING:  # traffic's shapes, not warmup's own
                recorder.observe(content_type, accept, rows, tokens)

        return observe

    def _monitor(self) -> HealthMonitor:
        c = self.config
        policy = HealthPolicy(c.watchdog_s, c.degrade_after, c.stall_fail_s, c.canary_interval_s)

        async def canary(item: Item) -> object:
            assert self.batcher is not None
            return await self.batcher.submit(item, c.timeout_s)

        return HealthMonitor(
            self.lifecycle,
            policy,
            self.inference.busy_for,
            self.batches,
            canary,
            lambda reason: self._fail(WarmgateError(reason)),
            time.monotonic,
        )

    def _fail(self, error: WarmgateError) -> None:
        if not self.lifecycle.can(Phase.FAILED):  # draining already: a stop, not a failure
            log.info("failure while %s (not recorded): %s", self.lifecycle.phase.value, error.message)
            return
        self.lifecycle.transition(Phase.FAILED, error.message)
        if self.config.exit_on_failure:
            self.exit_code = 1

    async def _warm(self, model: Model, deadline: float) -> None:
        from warmgate.warmup.promptset import default_prompt_set, load_prompt_sets

        assert self.pipeline is not None
        pipeline = self.pipeline
        await self.inference.run_now(model.warmup_hook)
        paths = self._prompt_paths()
        if paths or model.kind is not ModelKind.TEXT:
            prompts = load_prompt_sets(paths)
        else:
            prompts = default_prompt_set(model.max_batch)

        async def path(body: bytes, content_type: str, accept: str) -> Reply:
            return await pipeline.handle(body, content_type, accept)

        def progress(done: int, total: int, current: str) -> None:
            w = self.lifecycle.warmup
            w.done, w.total, w.current = done, total, current

        def on_shape(result: ShapeResult) -> None:
            self.metrics.warmup_seconds.labels(result.name).set(result.seconds)
            self.metrics.warmup_steady_seconds.labels(result.name).set(result.steady_s)

        def shape_of(body: bytes, content_type: str, accept: str) -> Planned:
            """Where a warmup request lands, before it runs: the request path's own decode and
            prepare (a text model tokenises), without the batcher or the backend."""
            codec = pipeline.codecs[Protocol.SAGEMAKER]
            decoded = codec.decode(Incoming(body, media_type(content_type), accept))
            item = model.prepare(decoded.payload)
            return Planned(item.bucket, item.runs_at)

        # A user handler's prepare is its own code: it runs only on the request path.
        handler = model.kind is ModelKind.HANDLER
        synthetic = None if handler else model.synthetic_request
        planner: ShapeOf | None = None if handler else shape_of
        policy = WarmupPolicy(self.config.warmup_max_runs, self.config.warmup_tolerance)
        http = LoopbackSender(self.loopback_url, self._warmup_token) if self.loopback_url else None
        try:
            self.warmup_results = await run_warmup(
                path,
                prompts,
                model.buckets(),
                synthetic,
                policy,
                progress,
                on_shape,
                deadline,
                http,
                shape_of=planner,
                lanes=model.instances,
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
