"""A real HTTP endpoint for replay/record tests: a small Starlette app under uvicorn in a
background thread, answering like an inference endpoint and recording request shapes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from warmgate.warmup.record import ShapeRecorder

SEQ_BUCKETS = (16, 32, 64, 128, 256)


@dataclass
class Endpoint:
    url: str
    recorder: ShapeRecorder
    received: list[bytes]


def _texts(body: bytes, content_type: str) -> list[str]:
    if content_type.startswith("text/plain"):
        return [body.decode()]
    value = json.loads(body)
    inputs = value["inputs"] if isinstance(value, dict) else value
    return [inputs] if isinstance(inputs, str) else list(inputs)


def make_app(recorder: ShapeRecorder, received: list[bytes]) -> Starlette:
    async def invocations(request: Request) -> Response:
        body = await request.body()
        received.append(body)
        content_type = request.headers.get("content-type", "application/json")
        if b"boom" in body:
            return JSONResponse({"error": "model_error", "message": "boom"}, status_code=500)
        try:
            texts = _texts(body, content_type)
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "bad_request", "message": "bad body"}, status_code=400)
        tokens = max(len(t.split()) + 2 for t in texts) if texts else 0
        recorder.observe(content_type, request.headers.get("accept", ""), len(texts), tokens)
        return JSONResponse({"embeddings": [[0.0, 1.0] for _ in texts]})

    async def always_500(request: Request) -> Response:
        await request.body()
        return JSONResponse({"error": "model_error", "message": "always"}, status_code=500)

    async def shapes(request: Request) -> Response:
        return JSONResponse(recorder.snapshot())

    return Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/always-500", always_500, methods=["POST"]),
            Route("/warmgate/shapes", shapes, methods=["GET"]),
        ]
    )


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    recorder = ShapeRecorder(seq_buckets=SEQ_BUCKETS)
    received: list[bytes] = []
    config = uvicorn.Config(
        make_app(recorder, received), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test endpoint did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Endpoint(f"http://127.0.0.1:{port}", recorder, received)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
