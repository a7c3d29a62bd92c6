"""A model change in a running ``warmgate fleet`` (SIGHUP), under steady load from another
process, with real HAProxy, real replicas and the fleet's SQLite pool store.

Two ONNX models built here answer a zero input with different constants (1.0 and 2.0), so
every response names the model that served it. The model directory is a symlink, swapped
atomically to the other model before the SIGHUP.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.e2e.books import BookWatch
from tests.e2e.fleet_process import FleetProcess, fleet_process, gone, pids
from tests.e2e.haproxy import requires_haproxy
from tests.e2e.model_load import read_rows, running
from warmgate.autoscaling.pool import MemberState, PoolConfig
from warmgate.fleet.match import fleet_match_key
from warmgate.fleet.replica import ReplicaSpec
from warmgate.fleet.store import MatchKey
from warmgate.fleet.store.sqlite import SqlitePoolStore

pytestmark = pytest.mark.e2e

OLD, NEW = 1.0, 2.0
SWITCHED = 'warmgate_fleet_redeploys_total{outcome="switched"}'
FAILED = 'warmgate_fleet_redeploys_total{outcome="failed"}'
SWITCH_AT = "warmgate_fleet_model_switch_timestamp_seconds"


def marked(model_dir: Path, mark: float) -> Path:
    """``y = x + mark``; x float32 [batch, 4]: a zero input answers ``mark`` everywhere."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "m"], ["y"])],
        "marked",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        initializer=[numpy_helper.from_array(np.full(4, mark, np.float32), "m")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model_dir.mkdir(parents=True)
    onnx.save(model, str(model_dir / "model.onnx"))
    return model_dir


def point(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (a new symlink renamed over the old one)."""
    tmp = link.with_name(link.name + ".new")
    tmp.symlink_to(target)
    os.replace(tmp, link)


@dataclass
class Models:
    root: Path  # short: it also holds the fleet's work directory (HAProxy's socket)
    current: Path  # the symlink the fleet is given
    old: Path
    new: Path
    broken: Path


@pytest.fixture
def models() -> Iterator[Models]:
    root = Path(tempfile.mkdtemp(prefix="wg-rd-"))
    try:
        old, new = marked(root / "old", OLD), marked(root / "new", NEW)
        broken = root / "broken"
        broken.mkdir()
        (broken / "model.onnx").write_bytes(b"these bytes are not an ONNX model")
        current = root / "current"
        current.symlink_to(old)
        yield Models(root, current, old, new, broken)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def load(url: str, out: Path) -> AbstractContextManager[subprocess.Popen[bytes]]:
    return running(url, out, workers=3)


FLEET_ARGS = [
    "--replicas", "2", "--min-hot", "2", "--max-replicas", "4", "--pool", "1",
    "--tick-s", "0.1", "--drain-delay-s", "0.5", "--scale-in-window-s", "600",
    "--redeploy-timeout-s", "120",
]  # fmt: skip


def _ready_standbys(store: SqlitePoolStore, key: MatchKey) -> list[str]:
    return [m.member_id for m in store.members(key) if m.state is MemberState.READY]


def _settle(fleet: FleetProcess, store: SqlitePoolStore, key: MatchKey) -> list[str]:
    """Two replicas in rotation and one READY standby of ``key`` on the books: its ids."""
    fleet.until(lambda: fleet.in_rotation() == 2, "two replicas in rotation")
    fleet.until(lambda: len(_ready_standbys(store, key)) == 1, "one READY standby of the model")
    return _ready_standbys(store, key)


def _answered_after(rows: list[dict[str, float]], at: float) -> int:
    return sum(1 for r in rows if r["sent"] > at)


@requires_haproxy
def test_after_a_model_change_no_request_is_served_by_the_old_model_once_the_new_one_is_ready(
    models: Models,
) -> None:
    old_key = fleet_match_key(ReplicaSpec(models.old))
    new_key = fleet_match_key(ReplicaSpec(models.new))
    assert old_key != new_key
    workdir = models.root / "w"
    rows_path = models.root / "rows.jsonl"
    with fleet_process(models.current, workdir, FLEET_ARGS) as fleet:
        store = SqlitePoolStore(workdir / "pool.db", PoolConfig())
        fleet.until(lambda: (workdir / "pool.db").exists(), "the pool store")
        old_standbys = _settle(fleet, store, old_key)
        watch = BookWatch(SqlitePoolStore(workdir / "pool.db", PoolConfig()))
        with load(fleet.url, rows_path) as loader, watch as books:
            fleet.until(lambda: len(read_rows(rows_path)) >= 20, "the load flowing through HAProxy")
            point(models.current, models.new)
            fleet.proc.send_signal(signal.SIGHUP)
            fleet.until(lambda: fleet.metric(SWITCHED) == 1.0, "the fleet to report the switch", 120)
            switched_at = fleet.metric(SWITCH_AT)
            assert switched_at is not None
            fleet.until(
                lambda: _answered_after(read_rows(rows_path), switched_at) >= 30,
                "requests sent after the switch answered",
            )
            # The pool was replaced: a READY standby of the new key, none of the old key left.
            fleet.until(lambda: len(_ready_standbys(store, new_key)) == 1, "a READY standby of the new model")
            fleet.until(lambda: store.members(old_key) == (), "the old key's standbys off the books")
        assert loader.returncode == 0, loader.stderr.read() if loader.stderr else ""

        rows = read_rows(rows_path)
        failed = [r for r in rows if r["status"] != 200]
        assert failed == [], f"{len(failed)} of {len(rows)} requests failed, e.g. {failed[:3]}"
        before = [r["mark"] for r in rows if r["sent"] <= switched_at]
        after = [r["mark"] for r in rows if r["sent"] > switched_at]
        assert OLD in before  # the old model served while the new one warmed
        assert set(after) == {NEW}, (
            f"{after.count(OLD)} of {len(after)} requests after the switch got the old model"
        )

        text = fleet.text()
        # The old key's standbys were drained, never claimed: never CLAIMED on the books,
        # never promoted by the fleet, named in the drain, their processes stopped.
        for member_id in old_standbys:
            assert MemberState.READY in books.states(member_id), books.seen
            assert MemberState.CLAIMED not in books.states(member_id), books.seen
            assert f"promoted standby {member_id}" not in text
        drained = re.search(r"drained old standbys \[([^\]]*)\]", text)
        assert drained is not None, text
        assert sorted(re.findall(r"'([^']+)'", drained.group(1))) == sorted(old_standbys)
        launched = dict(re.findall(r"launched (\S+) \(standby, generation 0\) pid (\d+)", text))
        assert all(gone(int(launched[m])) for m in old_standbys), text
        # The replicas of the old model were drained and exited 0.
        old_replicas = re.findall(r"launched (replica-\d+) \(serving, generation 0\)", text)
        assert len(old_replicas) == 2, text
        fleet.until(
            lambda: all(f"{r} exited 0 after draining" in fleet.text() for r in old_replicas),
            "the old model's replicas to drain and exit 0",
        )
        assert (
            fleet.metric(
                f'warmgate_fleet_model_info{{match_key="{new_key.digest}",model_digest="{new_key.model_digest}"}}'
            )
            == 1.0
        )

        assert fleet.stop() == 0, fleet.text()
        assert all(gone(pid) for pid in pids(fleet.text()))
        assert store.members() == ()
        store.close()


@requires_haproxy
def test_a_new_model_that_fails_to_load_leaves_the_old_model_serving(models: Models) -> None:
    old_key = fleet_match_key(ReplicaSpec(models.old))
    workdir = models.root / "w"
    rows_path = models.root / "rows.jsonl"
    with fleet_process(models.current, workdir, FLEET_ARGS) as fleet:
        fleet.until(lambda: (workdir / "pool.db").exists(), "the pool store")
        store = SqlitePoolStore(workdir / "pool.db", PoolConfig())
        _settle(fleet, store, old_key)
        with load(fleet.url, rows_path) as loader:
            fleet.until(lambda: len(read_rows(rows_path)) >= 20, "the load flowing through HAProxy")
            point(models.current, models.broken)
            fleet.proc.send_signal(signal.SIGHUP)
            fleet.until(lambda: fleet.metric(FAILED) == 1.0, "the fleet to give the new model up", 120)
            given_up = time.time()
            fleet.until(
                lambda: _answered_after(read_rows(rows_path), given_up) >= 30,
                "requests answered after the redeploy failed",
            )
            # The pool is back on the old key: a READY standby of the old model again.
            fleet.until(lambda: len(_ready_standbys(store, old_key)) == 1, "a READY standby of the old model")
        assert loader.returncode == 0

        rows = read_rows(rows_path)
        assert [r for r in rows if r["status"] != 200] == []
        assert {r["mark"] for r in rows} == {OLD}
        text = fleet.text()
        assert re.search(r"redeploy failed: replica-\d+ of the new model failed: \S", text), text
        assert fleet.metric(SWITCHED) == 0.0
        assert fleet.in_rotation() == 2
        assert fleet.stop() == 0, fleet.text()
        store.close()
