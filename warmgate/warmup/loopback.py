"""Warm the HTTP stack itself: warmup requests sent to the replica's own listener over loopback.

In-process warmup drives decode → batcher → backend → encode, but not the HTTP server's parser,
the framework's routing and request/response objects for an inference route, nor the first POST
with a body: without this, the first request a client sends is the first the HTTP stack serves,
and it is the slowest of all.

While the replica is WARMING its inference routes answer 503 to everyone, so a warmup request
proves itself with :data:`WARMUP_HEADER` carrying a token made once per process
(:func:`new_token`); the server lets exactly those through before READY. The token never leaves
the process except on the loopback connection.
"""

from __future__ import annotations

import ipaddress
import secrets

import httpx

from warmgate.errors import WarmupError

#: Header that lets a warmup request reach the inference route before READY.
WARMUP_HEADER = "x-warmgate-warmup"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def loopback_url(host: str, port: int) -> str:
    """The URL at which this process reaches its own listener bound to ``host``: a wildcard
    address is reached through the loopback address of its family."""
    if host in ("", "0.0.0.0", "localhost"):
        return f"http://127.0.0.1:{port}"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # a host name: connect to it as given
        return f"http://{host}:{port}"
    if address.version == 6:
        return f"http://[{'::1' if address.is_unspecified else host}]:{port}"
    return f"http://{host}:{port}"


class LoopbackSender:
    """``await sender(body, content_type, accept)`` POSTs to ``route`` on the replica's own port
    and returns the status code (the warmup runner's ``HttpSend``). Keeps one connection open,
    as a client would; :meth:`aclose` when warmup is over."""

    def __init__(
        self, base_url: str, token: str, route: str = "/invocations", timeout_s: float = 60.0
    ) -> None:
        self._route = route
        self._client = httpx.AsyncClient(
            base_url=base_url, timeout=timeout_s, headers={WARMUP_HEADER: token}, trust_env=False
        )

    async def __call__(self, body: bytes, content_type: str, accept: str) -> int:
        headers = {"Content-Type": content_type, "Accept": accept}
        try:
            response = await self._client.post(self._route, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise WarmupError(
                f"loopback warmup request to {self._client.base_url}{self._route} failed: {exc!r}"
            ) from exc
        await response.aread()
        return response.status_code

    async def aclose(self) -> None:
        await self._client.aclose()
