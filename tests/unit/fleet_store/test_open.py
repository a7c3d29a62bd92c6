"""open_store picks the engine from the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.errors import ConfigError
from warmgate.fleet.store import MatchKey, SqlitePoolStore, open_store
from warmgate.fleet.store.open import redact

KEY = MatchKey.of("sha256:aa", "v1", "cpu")


@pytest.mark.parametrize("form", ["sqlite:///{}", "{}"])
def test_a_sqlite_url_or_path_opens_that_file(tmp_path: Path, form: str) -> None:
    path = tmp_path / "pool.db"
    first = open_store(form.format(path), PoolConfig())
    controller = first.join("c", now=0.0).controller_id
    first.register("m", KEY, controller, now=0.0)
    first.close()
    assert path.exists()
    again = open_store(str(path), PoolConfig())
    assert again.get("m").state is MemberState.WARMING  # the books outlive the connection
    again.close()


def test_sqlite_with_no_path_is_in_memory() -> None:
    store = open_store("sqlite://", PoolConfig())
    assert isinstance(store, SqlitePoolStore)
    assert store.members() == ()
    store.close()


@pytest.mark.parametrize("url", ["sqlite:pool.db", "sqlite:///"])
def test_malformed_sqlite_urls_say_how_to_write_them(url: str) -> None:
    with pytest.raises(ConfigError, match="sqlite"):
        open_store(url, PoolConfig())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:secret@db.example/pool", "postgresql://db.example/pool"),
        ("postgresql:///pool?host=/run/pg&password=secret", "postgresql:///pool?host=/run/pg&password=***"),
        ("host=/run/pg user=u password='s e c' dbname=pool", "host=/run/pg user=u password=*** dbname=pool"),
        ("sqlite:///pool.db", "sqlite:///pool.db"),
    ],
)
def test_store_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact(url) == shown
