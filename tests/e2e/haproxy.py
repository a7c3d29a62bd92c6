"""Skip marker for end-to-end tests that need a real HAProxy binary."""

from __future__ import annotations

import pytest

from warmgate.fleet.haproxy import HaproxyError, find_haproxy


def _have_haproxy() -> bool:
    try:
        find_haproxy()
    except HaproxyError:
        return False
    return True


requires_haproxy = pytest.mark.skipif(
    not _have_haproxy(), reason="HAProxy is not installed (make system-deps)"
)
