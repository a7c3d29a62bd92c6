"""The warm pool's books in a store several controllers share (DESIGN §6).

- :mod:`.key`: :class:`MatchKey`, what a standby must match to be promoted;
- :mod:`.records`: the records and errors a store hands back;
- :mod:`.protocol`: :class:`PoolStore`, the one interface;
- :mod:`.sql`: that interface over SQL, with the pure pool's rules;
- :mod:`.sqlite` (embedded default) and :mod:`.postgres` (shared, ``FOR UPDATE SKIP LOCKED``);
- :mod:`.open`: :func:`open_store` from a URL.

The PostgreSQL driver is optional: :mod:`.postgres` is imported only when used.
"""

from warmgate.fleet.store.key import MatchKey
from warmgate.fleet.store.open import open_store
from warmgate.fleet.store.protocol import PoolStore
from warmgate.fleet.store.records import (
    DuplicateMember,
    Lease,
    LeaseExpired,
    PoolDraining,
    StoredMember,
    StoreReapReport,
)
from warmgate.fleet.store.sqlite import SqlitePoolStore

__all__ = [
    "DuplicateMember",
    "Lease",
    "LeaseExpired",
    "MatchKey",
    "PoolDraining",
    "PoolStore",
    "SqlitePoolStore",
    "StoreReapReport",
    "StoredMember",
    "open_store",
]
