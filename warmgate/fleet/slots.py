"""The backend's ``server`` lines as a pool of slots: each replica holds one while it lives."""

from __future__ import annotations

from collections.abc import Sequence

from warmgate.errors import WarmgateError


class NoFreeSlot(WarmgateError):
    """Every server line of the HAProxy backend is held by a replica."""

    code = "no_free_slot"


class Slots:
    """Hands out slot names lowest first; a released slot is reused."""

    def __init__(self, names: Sequence[str]) -> None:
        self._order = tuple(names)
        self._holder: dict[str, str] = {}  # slot -> replica id

    @property
    def names(self) -> tuple[str, ...]:
        return self._order

    def acquire(self, replica_id: str) -> str:
        for name in self._order:
            if name not in self._holder:
                self._holder[name] = replica_id
                return name
        raise NoFreeSlot(
            f"all {len(self._order)} HAProxy server slots are held (replicas and draining ones); "
            "raise the fleet's slot count or its max_replicas"
        )

    def release(self, name: str) -> None:
        self._holder.pop(name, None)

    def holder(self, name: str) -> str | None:
        return self._holder.get(name)

    @property
    def free(self) -> int:
        return len(self._order) - len(self._holder)
