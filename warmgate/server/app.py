"""The ASGI app: health (SageMaker, Kubernetes, KServe OIP), metrics, and inference routes.

Health and metrics routes never wait on inference. Every error becomes JSON here, in one handler.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from warmgate import __version__
from warmgate.errors import NotFound, PayloadTooLarge, Unavailable, WarmgateError, http_status
from warmgate.server import codecs
from warmgate.server.pipeline import Pipeline, Protocol
from warmgate.server.runtime import Runtime
from warmgate.warmup.loopback import WARMUP_HEADER

Handler = Callable[[Request], Awaitable[Response]]


def error_response(exc: Exception, oip: bool = False) -> JSONResponse:
    """The one mapping of exceptions to HTTP responses.

    The body is ``{"error": code, "message": text}``; on the Open Inference Protocol's routes
    (``oip``) ``error`` carries the text instead, as KServe's clients (tritonclient) show it,
    and the code moves to ``code``.
    """
    headers = None
    if isinstance(exc, HTTPException):
        code, message, status = "http_error", str(exc.detail), exc.status_code
    elif isinstance(exc, WarmgateError):
        code, message, status = exc.code, exc.message, http_status(exc)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Unavailable) else None
    else:
        code, message, status = "internal_error", f"{type(exc).__name__}: {exc}", 500
    body = {"error": code, "message": message}
    if oip:
        body = {"error": message, "code": code, "message": message}
    return JSONResponse(body, status, headers=headers)


class _App(Starlette):
    """Starlette, with the hottest routes dispatched straight to their handlers.

    ``POST /invocations`` and ``GET /ping`` skip Starlette's middleware stack and router (its
    error middlewares, the route match, the request/response wrappers): under saturation the
    event loop pays that per request, on the cores the model needs. Their handlers are the same
    ``timed`` ones the router holds, which already turn every exception into the JSON error
    response, so nothing the stack did for them is lost. Every other route, a ``HEAD``, and any
    request under a root path go through Starlette as before.
    """

    def __init__(self, hot: dict[tuple[str, str], Handler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            handler = self._hot.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self
                response = await handler(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(rt: Runtime) -> Starlette:
    """The app over ``rt``; the lifespan starts and stops the runtime."""
    config = rt.config

    def timed(route: str, handler: Handler) -> Handler:
        # the labelled children, looked up once per status (not per request)
        by_status = functools.cache(lambda status: rt.metrics.request_seconds.labels(route, str(status)))
        oip = route.startswith("/v2")

        async def wrapped(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                response = await handler(request)
            except Exception as exc:  # mapped to a JSON response in one place
                response = error_response(exc, oip)
            if not rt.is_warmup_request(request.headers.get(WARMUP_HEADER)):  # warmup is not traffic
                by_status(response.status_code).observe(time.perf_counter() - t0)
            return response

        return wrapped

    def not_ready() -> JSONResponse:
        return JSONResponse(rt.lifecycle.to_json(), 503, headers={"Retry-After": "5"})

    async def ping(request: Request) -> Response:
        return Response(status_code=200) if rt.lifecycle.ready else not_ready()

    async def readyz(request: Request) -> Response:
        return JSONResponse(rt.lifecycle.to_json()) if rt.lifecycle.ready else not_ready()

    async def livez(request: Request) -> Response:
        body = {"phase": rt.lifecycle.phase.value, "reason": rt.lifecycle.reason}
        return JSONResponse(body, 200 if rt.healthy() else 503)

    def check_model(request: Request) -> None:
        name = request.path_params["name"]
        if rt.model is None or name != rt.model.name:
            known = rt.model.name if rt.model else "(not loaded yet)"
            raise NotFound(f"unknown model {name!r}; this server serves {known}")

    async def model_ready(request: Request) -> Response:
        if not rt.lifecycle.ready:
            return not_ready()
        check_model(request)
        return JSONResponse({"name": rt.model.name if rt.model else "", "ready": True})

    async def model_metadata(request: Request) -> Response:
        check_model(request)
        assert rt.model is not None
        model = rt.model
        return JSONResponse(
            {
                "name": model.name,
                "versions": ["1"],
                "platform": str(model.metadata().get("backend", model.kind.value)),
                "kind": model.kind.value,
                "inputs": [codecs.oip_spec(s) for s in model.inputs],
                "outputs": [codecs.oip_spec(s) for s in model.outputs],
                "max_batch_size": model.max_batch,
                "buckets": [b.label() for b in model.buckets()],
                **dict(model.metadata()),
            }
        )

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "warmgate", "version": __version__, "extensions": []})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(rt.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def execution_parameters(request: Request) -> Response:
        return JSONResponse(
            {
                "MaxConcurrentTransforms": max(1, min(config.max_queue, config.bucket_plan().max_batch)),
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": int(config.max_payload_mb),
            }
        )

    async def keep_warm(request: Request) -> Response:
        seconds = rt.rearm_keep_warm()
        return JSONResponse({"keep_warm_s": seconds, "until": "the next request"}, 202)

    async def shapes(request: Request) -> Response:
        if rt.recorder is None:
            raise NotFound("shape recording is off; start the server with WARMGATE_RECORD=1")
        return JSONResponse(rt.recorder.snapshot())

    async def read_body(request: Request) -> bytes:
        limit = config.max_payload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"body of {declared} bytes exceeds {config.max_payload_mb:g} MiB "
                "(SAGEMAKER_MAX_PAYLOAD_IN_MB)"
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(
                    f"body exceeds {config.max_payload_mb:g} MiB (SAGEMAKER_MAX_PAYLOAD_IN_MB)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def serving_pipeline(warmup: bool) -> Pipeline:
        if not (rt.lifecycle.serving or warmup) or rt.pipeline is None:
            raise rt.not_ready()
        return rt.pipeline

    received_by = functools.cache(rt.metrics.received.labels)  # labelled children, looked up once

    def received(request: Request, route: str) -> bool:
        """Count an inference request under the phase it arrived in; True for warmup's own
        loopback requests, which are not traffic (not counted, but let in while WARMING)."""
        warmup = rt.is_warmup_request(request.headers.get(WARMUP_HEADER))
        if not warmup:
            received_by(route, rt.lifecycle.phase.value).inc()
            if rt.lifecycle.serving:
                rt.traffic.set()  # the first request ends the keep-warm
        return warmup

    async def infer(request: Request, protocol: Protocol, warmup: bool) -> Response:
        pipeline = serving_pipeline(warmup)
        with rt.admission.admit():
            body = await read_body(request)
            reply = await pipeline.handle(
                body,
                request.headers.get("content-type"),
                request.headers.get("accept"),
                protocol,
                request.headers.get("inference-header-content-length"),
            )
        return Response(reply.body, media_type=reply.content_type, headers=dict(reply.headers))

    async def invocations(request: Request) -> Response:
        warmup = received(request, "/invocations")
        return await infer(request, Protocol.SAGEMAKER, warmup)

    async def oip_infer(request: Request) -> Response:
        warmup = received(request, "/v2/models/{name}/infer")
        check_model(request)
        return await infer(request, Protocol.OIP, warmup)

    def route(path: str, handler: Handler, method: str = "GET") -> Route:
        """A route whose duration histogram is labelled with its path template."""
        return Route(path, timed(path, handler), methods=[method])

    hot = {
        ("GET", "/ping"): route("/ping", ping),
        ("POST", "/invocations"): route("/invocations", invocations, "POST"),
    }
    routes = [
        hot["GET", "/ping"],
        route("/readyz", readyz),
        route("/livez", livez),
        route("/v2/health/live", livez),
        route("/v2/health/ready", readyz),
        route("/v2", server_metadata),
        route("/v2/models/{name}", model_metadata),
        route("/v2/models/{name}/ready", model_ready),
        route("/v2/models/{name}/infer", oip_infer, "POST"),
        hot["POST", "/invocations"],
        route("/execution-parameters", execution_parameters),
        route("/warmgate/shapes", shapes),
        route("/warmgate/keep-warm", keep_warm, "POST"),
        Route("/metrics", metrics, methods=["GET"]),  # not timed: scrapes would skew the histogram
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt.start()
        yield
        await rt.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    return _App(
        {key: r.endpoint for key, r in hot.items()},
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
