"""The warm pool's books in a store several controllers share (DESIGN §6).

- :mod:`.key`: :class:`MatchKey`, what a standby must match to be promoted;
- :mod:`.records`: the records and errors a store hands back;
- :mod:`.status`: a pool's status and SageMaker's member statuses;
- :mod:`.history`: the events every move records, and what is computed from them;
- :mod:`.protocol`: :class:`PoolStore`, the one interface;
- :mod:`.schema`: the versioned migrations;
- :mod:`.tx`, :mod:`.sql_pools`, :mod:`.sql`: that interface over SQL, with the pure pool's rules;
- :mod:`.sqlite` (embedded default) and :mod:`.postgres` (shared, ``FOR UPDATE SKIP LOCKED``);
- :mod:`.open`: :func:`open_store` from a URL;
- :mod:`.metrics`: the members' statuses as Prometheus metrics;
- :mod:`.local_postgres`: a throwaway local PostgreSQL server (tests, benchmark).

The PostgreSQL driver is optional: :mod:`.postgres` is imported only when used.
"""

from warmgate.fleet.store.history import EventRecord, PoolEvent, claimed_while_claimed
from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.open import open_store
from warmgate.fleet.store.protocol import PoolStore
from warmgate.fleet.store.records import (
    DuplicateMember,
    Lease,
    LeaseExpired,
    PoolArchived,
    PoolDraining,
    PoolNotEmpty,
    SchemaVersionError,
    StoredMember,
    StoreReapReport,
    StoreUnavailable,
    UnknownPool,
)
from warmgate.fleet.store.sqlite import SqlitePoolStore
from warmgate.fleet.store.status import PoolSettings, PoolStatus, WarmPoolStatus, member_status

__all__ = [
    "DuplicateMember",
    "EventRecord",
    "Lease",
    "LeaseExpired",
    "MatchKey",
    "PoolArchived",
    "PoolDraining",
    "PoolEvent",
    "PoolNotEmpty",
    "PoolSettings",
    "PoolStatus",
    "PoolStore",
    "SchemaVersionError",
    "SqlitePoolStore",
    "StoreReapReport",
    "StoreUnavailable",
    "StoredMember",
    "UnknownPool",
    "WarmPoolStatus",
    "claimed_while_claimed",
    "member_status",
    "open_store",
]
