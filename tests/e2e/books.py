"""Watch a pool store's books from a thread while fleets run: every (state, owner) each
member showed. The store deletes a member once it is finished, so a test that wants to know
whether a member was ever CLAIMED (and by whom) must look while it happens."""

from __future__ import annotations

import threading
from collections import defaultdict

from warmgate.autoscaling.pool import MemberState
from warmgate.fleet.store import PoolStore


class BookWatch:
    """Polls ``store.members()`` every ``every_s`` until the ``with`` block ends. The store
    is the watcher's own (one connection, used only by its thread), closed at the end."""

    def __init__(self, store: PoolStore, every_s: float = 0.02) -> None:
        self._store = store
        self._every_s = every_s
        self.seen: defaultdict[str, set[tuple[MemberState, str]]] = defaultdict(set)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="book-watch", daemon=True)

    def __enter__(self) -> BookWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._store.close()

    def states(self, member_id: str) -> set[MemberState]:
        return {state for state, _ in self.seen.get(member_id, set())}

    def claimers(self, member_id: str) -> set[str]:
        """The controllers the member was CLAIMED by, as seen."""
        return {owner for state, owner in self.seen.get(member_id, set()) if state is MemberState.CLAIMED}

    def claimed(self) -> set[str]:
        return {m for m in list(self.seen) if self.claimers(m)}

    def _poll(self) -> None:
        while not self._stop.is_set():
            for stored in self._store.members():
                self.seen[stored.member_id].add((stored.member.state, stored.owner))
            self._stop.wait(self._every_s)
