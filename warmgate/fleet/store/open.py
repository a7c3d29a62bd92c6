"""Open a pool store from a URL: ``postgresql://…`` (shared) or a SQLite path (embedded)."""

from __future__ import annotations

import re

from warmgate.autoscaling.pool import PoolConfig
from warmgate.errors import ConfigError
from warmgate.fleet.store.protocol import PoolStore

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+)")


def open_store(
    url: str, config: PoolConfig, *, lease_ttl_s: float = 30.0, migrate: bool = False
) -> PoolStore:
    """``postgresql://user@host/db`` → :class:`PostgresPoolStore` (needs the ``postgres``
    extra); ``sqlite:///pool.db`` (relative), ``sqlite:////abs/pool.db``, ``sqlite://``
    (in memory) or a plain path → :class:`SqlitePoolStore`.

    A PostgreSQL store's schema must be current (``warmgate pool migrate``) unless ``migrate``
    applies the pending migrations; a SQLite file is always migrated on open."""
    if url.startswith(_POSTGRES_SCHEMES):
        try:
            from warmgate.fleet.store.postgres import PostgresPoolStore
        except ImportError as exc:
            raise ConfigError(
                f"pool store {redact(url)!r} is PostgreSQL, but psycopg is not installed: "
                "pip install 'warmgate[postgres]'"
            ) from exc
        return PostgresPoolStore(url, config, lease_ttl_s=lease_ttl_s, migrate=migrate)
    from warmgate.fleet.store.sqlite import SqlitePoolStore

    path = sqlite_path(url)
    assert path is not None  # not PostgreSQL
    return SqlitePoolStore(path, config, lease_ttl_s=lease_ttl_s)


def sqlite_path(url: str) -> str | None:
    """The SQLite file a store URL names (``":memory:"`` for ``sqlite://``); ``None`` for a
    PostgreSQL URL."""
    if url.startswith(_POSTGRES_SCHEMES):
        return None
    if url.startswith("sqlite:///"):  # SQLAlchemy's form: sqlite:///rel.db, sqlite:////abs.db
        path = url.removeprefix("sqlite:///")
    elif url == "sqlite://":
        path = ":memory:"
    elif url.startswith("sqlite:"):
        raise ConfigError(f"pool store URL {url!r}: write sqlite:///PATH (three slashes) or sqlite://")
    else:
        path = url
    if not path:
        raise ConfigError(f"pool store URL {url!r} names no SQLite file")
    return path


def redact(url: str) -> str:
    """The store URL or libpq conninfo without credentials, for messages and logs: the user
    info of a URL (what precedes ``@``) and any ``password=`` value go."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://{rest.rsplit('@', 1)[-1]}"
    return _PASSWORD.sub("password=***", url)
