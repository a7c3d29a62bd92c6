"""Admission control: a bounded number of requests inside the server at once.

Beyond the bound a request is refused at once with 503 + Retry-After, so the queue can never
grow without bound and a load balancer can send the request elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from warmgate.errors import Unavailable


class Admission:
    def __init__(
        self, limit: int, retry_after_s: int = 1, on_reject: Callable[[], None] = lambda: None
    ) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.admitted = 0
        self._on_reject = on_reject

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place for the duration of the block; raise ``Unavailable`` when full.

        Runs on the event loop only, so a plain counter is race-free.
        """
        if self.admitted >= self.limit:
            self._on_reject()
            raise Unavailable(
                f"server is at capacity ({self.limit} requests in progress); retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1
