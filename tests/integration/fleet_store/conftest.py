"""One contract, two stores: every test taking ``open_store`` runs on SQLite and PostgreSQL.

``open_store(config)`` opens another connection to the test's own database, so one test can
play several controllers. PostgreSQL runs for real (see :mod:`.postgres`); without its
binaries those cases skip, except under CI, where that is a missing install step (the
PostgreSQL fixtures are in ``tests/conftest.py``, shared with the fleet's e2e tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from psycopg.conninfo import conninfo_to_dict

from warmgate.autoscaling.pool import PoolConfig
from warmgate.fleet.store.postgres import PostgresPoolStore
from warmgate.fleet.store.protocol import PoolStore
from warmgate.fleet.store.sqlite import SqlitePoolStore

OpenStore = Callable[..., PoolStore]


@dataclass(frozen=True)
class StoreSpec:
    """Where a test's database is; picklable, so a child process can open it too."""

    kind: str  # "sqlite" or "postgres"
    where: str  # the SQLite file, or the PostgreSQL conninfo

    def open(self, config: PoolConfig | None = None, lease_ttl_s: float = 30.0) -> PoolStore:
        config = config or PoolConfig()
        if self.kind == "postgres":
            return PostgresPoolStore(self.where, config, lease_ttl_s=lease_ttl_s)
        return SqlitePoolStore(self.where, config, lease_ttl_s=lease_ttl_s)


@pytest.fixture(params=["sqlite", "postgres"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSpec:
    if request.param == "postgres":
        return StoreSpec("postgres", request.getfixturevalue("postgres_conninfo"))
    return StoreSpec("sqlite", str(tmp_path / "pool.db"))


@pytest.fixture
def store_url(store_spec: StoreSpec) -> str:
    """The test's store as a URL, for the command line."""
    return url_of(store_spec)


def url_of(spec: StoreSpec) -> str:
    if spec.kind == "sqlite":
        return f"sqlite:///{spec.where}"
    params = conninfo_to_dict(spec.where)
    query = {name: str(params[name]) for name in ("host", "port", "options") if name in params}
    return f"postgresql://{params['user']}@/{params['dbname']}?{urlencode(query, quote_via=quote)}"


@pytest.fixture
def open_store(store_spec: StoreSpec) -> Iterator[OpenStore]:
    """Open stores on the test's database (each its own connection); all closed afterwards."""
    opened: list[PoolStore] = []

    def open_(config: PoolConfig | None = None, lease_ttl_s: float = 30.0) -> PoolStore:
        store = store_spec.open(config, lease_ttl_s)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
