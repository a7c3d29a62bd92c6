"""``warmgate pool …`` against real stores (SQLite and PostgreSQL): ``main(argv)`` in process,
and the installed ``warmgate`` command in a subprocess for the migration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.fleet_store.conftest import OpenStore, StoreSpec, url_of
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.cli import main
from warmgate.fleet.store import MatchKey, PoolStore

KEY = MatchKey.of("sha256:7777", "v1", "cpu", {"batch": "8"})
OTHER = MatchKey.of("sha256:8888", "v1", "cpu")
CONFIG = PoolConfig(target_size=1, max_size=6)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``warmgate ARGV``: (exit code, stdout, stderr); argparse's exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def warmgate(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warmgate", *argv], capture_output=True, text=True, timeout=120
    )


def booked(open_store: OpenStore) -> tuple[PoolStore, str]:
    """A controller's books: 2 READY (one claimed), 1 WARMING under KEY; 1 READY under OTHER."""
    store = open_store(CONFIG, lease_ttl_s=1e9)
    c = store.join("fleet", now=0.0).controller_id
    for member_id, key in (("a", KEY), ("b", KEY), ("w", KEY), ("o", OTHER)):
        store.register(member_id, key, c, now=0.0)
    for member_id in ("a", "b", "o"):
        store.mark_ready(member_id, 1.0)
    store.claim(KEY, c, now=2.0)  # "a"
    return store, c


def test_migrate_then_status_on_a_new_store(postgres_bare_conninfo: str, tmp_path: Path) -> None:
    for url in (url_of(StoreSpec("postgres", postgres_bare_conninfo)), f"sqlite:///{tmp_path}/new.db"):
        if url.startswith("postgresql"):
            refused = warmgate("pool", "status", "--store", url)
            assert refused.returncode == 2
            assert "no pool schema yet" in refused.stderr
            assert "run `warmgate pool migrate --store URL`" in refused.stderr
        first = warmgate("pool", "migrate", "--store", url)
        assert (first.returncode, first.stderr) == (0, "")
        assert "schema at version 2 (applied 1, 2)" in first.stdout
        again = warmgate("pool", "migrate", "--store", url)
        assert "schema at version 2 (up to date)" in again.stdout
        status = warmgate("pool", "status", "--store", url, "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["pools"] == []


def test_status_shows_every_key_with_counts_statuses_and_json(
    open_store: OpenStore, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    booked(open_store)
    code, out, _ = cli(capsys, "pool", "status", "--store", store_url, "--json")
    assert code == 0
    pools = {p["key_id"]: p for p in json.loads(out)["pools"]}
    assert set(pools) == {KEY.digest[:12], OTHER.digest[:12]}
    mine = pools[KEY.digest[:12]]
    assert mine["counts"] == {"warming": 1, "ready": 1, "claimed": 1, "errored": 0, "draining": 0}
    assert mine["statuses"] == {"Warming": 1, "Available": 1, "Reused": 0, "InUse": 1, "Terminated": 0}
    assert (mine["mode"], mine["keep_alive_ttl_s"], mine["min_standby"]) == ("active", None, 0)
    assert mine["key"]["options"] == {"batch": "8"}

    code, out, _ = cli(capsys, "pool", "status", "--store", store_url, "--key", KEY.digest[:6])
    assert code == 0 and KEY.digest[:12] in out and OTHER.digest[:12] not in out
    assert "Available" in out.splitlines()[0]

    code, out, _ = cli(capsys, "pool", "status", "--store", store_url, "--prometheus")
    assert f'warmgate_pool_member_status{{key="{KEY.digest[:12]}",status="InUse"}} 1.0' in out
    assert f'warmgate_pool_members_terminated_total{{key="{OTHER.digest[:12]}"}} 0.0' in out


def test_operator_commands_act_on_the_pool_a_key_prefix_names(
    open_store: OpenStore, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store, c = booked(open_store)
    key_id = KEY.digest[:8]

    def pool(*argv: str) -> tuple[int, str, str]:
        return cli(capsys, "pool", argv[0], "--store", store_url, "--key", key_id, *argv[1:])

    assert pool("replenish", "4")[0] == 0
    assert len(store.top_up(KEY, 1, c, now=3.0)) == 2  # "b" and "w" + 2 = 4 standbys
    assert pool("set-ttl", "0")[0] == 0
    assert {p.key: p.keep_alive_ttl_s for p in store.pools()} == {KEY: 0.0, OTHER: None}
    assert pool("set-ttl", "default")[0] == 0

    code, out, _ = pool("recycle")
    assert code == 0 and "recycled 1 READY standby(s): b" in out
    assert store.get("b").state is MemberState.DRAINING

    code, _, err = pool("archive")
    assert code == 2 and "drain it before archiving" in err
    assert pool("drain")[0] == 0
    code, _, err = pool("archive")
    assert code == 2 and "still has" in err and "1 claimed" in err
    code, _, err = pool("delete")
    assert code == 2 and "still has" in err

    store.mark_draining("a", "scaled in", now=4.0)
    store.reap(c, now=5.0)  # the controller removes what drained
    assert pool("archive")[0] == 0
    _, out, _ = cli(capsys, "pool", "status", "--store", store_url, "--json")
    assert [p["key_id"] for p in json.loads(out)["pools"]] == [OTHER.digest[:12]]  # archived: hidden
    _, out, _ = cli(capsys, "pool", "status", "--store", store_url, "--json", "--all")
    assert {p["mode"] for p in json.loads(out)["pools"]} == {"archived", "active"}
    assert store.top_up(KEY, 2, c, now=6.0) == ()
    assert pool("activate")[0] == 0
    assert pool("delete")[0] == 0
    assert [p.key for p in store.pools()] == [OTHER]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["drain", "--key", "zz"], "hex digits"),
        (["drain", "--key", "0000000000"], "no pool has a key id starting with"),
        (["set-ttl", "--key", "ab", "--", "-5"], "finite seconds >= 0"),
        (["set-ttl", "--key", "ab", "soon"], "write seconds >= 0, or 'default'"),
        (["replenish", "--key", "ab", "two"], "is not a whole number"),
        (["replenish", "--key", "ab", "--", "-1"], "must be >= 0"),
        (["drain"], "the following arguments are required: --key"),
        (["status", "--window-s", "0"], "must be > 0 seconds"),
        (["status", "--json", "--prometheus"], "not allowed with argument"),
    ],
)
def test_bad_arguments_say_what_is_wrong_and_exit_non_zero(
    open_store: OpenStore,
    store_url: str,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    open_store()  # the store exists and is current
    code, _, err = cli(capsys, "pool", argv[0], "--store", store_url, *argv[1:])
    assert code == 2
    assert message in err


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "pool", "status", "--store", f"sqlite:///{tmp_path}/typo.db")
    assert code == 2 and "no SQLite pool store at" in err


def test_a_store_that_cannot_be_opened_is_named_without_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql://postgres:secret@/postgres?host={tmp_path}"  # no server listens there
    code, _, err = cli(capsys, "pool", "status", "--store", url)
    assert code == 2 and "cannot connect to the PostgreSQL pool store" in err
    assert "secret" not in err
    code, _, err = cli(capsys, "pool", "migrate", "--store", f"{tmp_path}/missing/pool.db")
    assert code == 2 and "cannot open the SQLite pool store" in err
