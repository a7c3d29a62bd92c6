"""The loopback sender reaches a real listener, carries the warmup token, and names failures."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.process import free_port
from tests.unit.warmup.conftest import Endpoint
from warmgate.errors import WarmupError
from warmgate.warmup.loopback import LoopbackSender, loopback_url


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("10.1.2.3", "http://10.1.2.3:8080"),
        ("replica.local", "http://replica.local:8080"),
    ],
)
def test_loopback_url_reaches_a_wildcard_listener_on_loopback(host: str, url: str) -> None:
    assert loopback_url(host, 8080) == url


def test_sender_posts_the_body_and_returns_the_status(endpoint: Endpoint) -> None:
    async def go() -> list[int]:
        sender = LoopbackSender(endpoint.url, "secret")
        try:
            ok = await sender(b'{"inputs": ["a b"]}', "application/json", "application/json")
            bad = await sender(b"{not json", "application/json", "application/json")
        finally:
            await sender.aclose()
        return [ok, bad]

    assert asyncio.run(go()) == [200, 400]
    assert endpoint.received[0] == b'{"inputs": ["a b"]}'


def test_sender_names_an_unreachable_listener() -> None:
    async def go() -> int:
        sender = LoopbackSender(f"http://127.0.0.1:{free_port()}", "secret")
        try:
            return await sender(b"x", "text/plain", "application/json")
        finally:
            await sender.aclose()

    with pytest.raises(WarmupError, match=r"loopback warmup request to http://127\.0\.0\.1:"):
        asyncio.run(go())
