"""The shared store: PostgreSQL, for several controllers on several hosts (psycopg 3).

Claims select the oldest READY row ``FOR UPDATE SKIP LOCKED``: concurrent claimers lock
different rows instead of queueing on one, and none waits for a member another controller is
taking. Registering and claiming share-lock the controller's lease row, and the reaper
(serialised by a transaction-level advisory lock) update-locks the lapsed ones, so no claim
lands on a lease that is being expired. Install with the ``postgres`` extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.store.sql import Dialect, SqlPoolStore

# Any constant works; it only has to be the same in every controller of one database.
_LOCK_ID = 0x5741524D  # "WARM"

POSTGRES = Dialect(
    placeholder="%s",
    for_update=" FOR UPDATE",
    for_share=" FOR SHARE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
    serialize_reap=f"SELECT pg_advisory_xact_lock({_LOCK_ID}, 1)",
)


class PostgresPoolStore(SqlPoolStore):
    """The pool's books in PostgreSQL; ``conninfo`` is a libpq URL or key=value string."""

    def __init__(
        self,
        conninfo: str,
        config: PoolConfig,
        *,
        lease_ttl_s: float = 30.0,
        connect_timeout_s: int = 10,
        id_prefix: str = "standby",
    ) -> None:
        super().__init__(config, POSTGRES, lease_ttl_s=lease_ttl_s, id_prefix=id_prefix)
        self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout_s)
        # Controllers starting at once must not race on CREATE TABLE IF NOT EXISTS.
        self._create_schema(prelude=f"SELECT pg_advisory_xact_lock({_LOCK_ID}, 0)")

    @contextmanager
    def _begin(self) -> Iterator[Any]:
        with self._conn.transaction(), self._conn.cursor() as cursor:
            yield cursor

    def close(self) -> None:
        with self._lock:
            self._conn.close()
